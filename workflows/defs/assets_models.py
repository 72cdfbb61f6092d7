"""Model assets: one per model kind, each a checkpoint file trained on one symbol's features."""

from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import Field

from workflows.data.retention import prune_versions
from workflows.data.warehouse import load_features
from workflows.defs.assets_data import OWNERS, features
from workflows.defs.inputs import newest_period_model
from workflows.defs.partitions import EVERY_PERIOD_OF_SYMBOL, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.models import REFERENCE_TRANSFORMER_PARAMS
from workflows.ml.pipeline import fit
from workflows.ml.placement import place_training
from workflows.ml.profiles import model_kind, model_kinds, recipe_for, resolve_profile
from workflows.ml.progress import EpochProgress
from workflows.ml.windows import build_windows
from workflows.serving.promotion import read_pointer

# Bump when a change to the model code should retrain every model.
MODEL_CODE_VERSION = "1"


class TrainingConfig(dg.Config):
    profile: str = Field(default="", description="ci | cpu | full; empty: $WORKFLOWS_PROFILE, else cpu")
    device: str = Field(default="auto", description="auto (CUDA, MPS, CPU) or a torch device such as cpu / cuda")
    history_days: int | None = Field(
        default=None, description="Train on the last N days of the symbol's features only; empty or 0: all history"
    )


def build_model_asset(kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"{kind}_model",
        partitions_def=symbols_partitions,
        deps=[features, dg.AssetDep(f"{kind}_period_model", partition_mapping=EVERY_PERIOD_OF_SYMBOL)],
        pool="gpu",
        group_name="models",
        kinds={"pytorch"},
        owners=OWNERS,
        code_version=MODEL_CODE_VERSION,
        description=model_kind(kind).description,
        # Retrained by the daily schedule, and automatically when the model code changes.
        automation_condition=dg.AutomationCondition.code_version_changed() & ~dg.AutomationCondition.in_progress(),
    )
    def _model(context: dg.AssetExecutionContext, config: TrainingConfig, warehouse: WarehouseResource) -> dg.Output:
        symbol = partition_symbol(context)
        with warehouse.connect() as con:
            newest = newest_period_model(con, symbol, kind)
        if newest is not None:  # the forecast log's newest period model: nothing to train here
            return period_output(context, newest)
        profile = resolve_profile(config.profile or None)
        recipe = recipe_for(kind, profile)
        with warehouse.connect() as con:
            table, version = load_features(con, symbol, config.history_days)
        data = build_windows(table, recipe.window_spec, data_version=version)
        window = f"last {config.history_days} days" if config.history_days else "all history"
        context.log.info(f"{kind} on {symbol} ({profile} profile, {window}): {data.summary()}")

        def log_epoch(member, report):
            context.log.info(EpochProgress.of_report(report, member, recipe.members).format())

        folder = warehouse.paths().checkpoints / symbol
        # One training per device (GPU) or CPU slot, threads divided: workflows/ml/placement.py.
        with place_training(config.device, log=context.log.info) as placement:
            recipe = replace(recipe, train=replace(recipe.train, device=placement.device))
            context.log.info(f"{kind} on {placement.device} with {placement.threads} torch thread(s)")
            result = fit(recipe, data, folder, kind, callback=log_epoch)
        serving = (read_pointer(folder) or {}).get("path")
        pruned = prune_versions(
            folder, ".pt", warehouse.keep_versions, protect=[result.checkpoint, *filter(None, [serving])]
        )
        if pruned:
            context.log.info(f"kept the newest {warehouse.keep_versions} checkpoints per model; deleted {len(pruned)}")
        metrics = result.metrics
        if kind == "transformer":
            context.log.info(
                f"Transformer parameters: {metrics.parameters:,} against the reference's "
                f"{REFERENCE_TRANSFORMER_PARAMS:,} ({profile} profile)"
            )
        value = {
            "path": str(result.checkpoint),
            "sha256": result.sha256,
            "kind": kind,
            "profile": profile,
            "history_days": config.history_days or None,
        }
        return dg.Output(
            value,
            metadata={
                **{k: v for k, v in metrics.to_dict().items() if k != "history" and v is not None},
                "profile": profile,
                "history_window": window,
                "device": placement.device,
                "torch_threads": placement.threads,
                "checkpoint": dg.MetadataValue.path(str(result.checkpoint)),
                "sha256": result.sha256,
            },
        )

    return _model


def period_output(context: dg.AssetExecutionContext, ref: dict) -> dg.Output:
    ckpt = load_checkpoint(ref["path"], ref["sha256"])
    metrics = ckpt.training.to_dict()
    context.log.info(
        f"{ref['kind']}: the model of period {ref['period'][:7]} ({Path(ref['path']).name}), whose forecasts the "
        "forecast log holds; nothing trained"
    )
    return dg.Output(
        ref,
        metadata={
            **{k: v for k, v in metrics.items() if k != "history" and v is not None},
            "period": ref["period"][:7],
            "trained": False,
            "profile": ref.get("profile") or "?",
            "history_window": f"period {ref['period'][:7]}: trained on hours before it",
            "checkpoint": dg.MetadataValue.path(ref["path"]),
            "sha256": ref["sha256"],
        },
    )


model_assets = [build_model_asset(kind) for kind in model_kinds()]
