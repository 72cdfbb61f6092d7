"""Attention tensors and the attention-pattern analysis.

With forecast periods stored, attention is read from the tested models: `period_attention`
(per symbol and month) analyses that month's period models on that month's logged hours,
its controls trained once per month and architecture and kept on disk; `attention_tensors`
and `attention_analysis` (per symbol) pool the periods (`workflows.attention.periods`).
Without periods, both read the model assets on their own split.
"""

from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from workflows.attention.analysis import Protocol, analyse_all
from workflows.attention.extract import load_attention
from workflows.attention.period_run import (
    analyse_period,
    load_period_models,
    model_attention_files,
    pooled_attention_files,
)
from workflows.attention.periods import load_evidence, pool_all
from workflows.data.retention import prune_versions
from workflows.data.warehouse import load_features, replace_table_slice
from workflows.defs.assets_data import OWNERS
from workflows.defs.inputs import ANALYSIS_CODE_VERSION, MODEL_INS, load_inputs
from workflows.defs.partitions import (
    EAGER_AFTER_CHECKS,
    EVERY_PERIOD_OF_SYMBOL,
    partition_symbol,
    partition_symbol_period,
    symbol_periods,
    symbols_partitions,
)
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.forecast_log import stored_periods
from workflows.io import write_json_atomic
from workflows.ml.profiles import model_kinds
from workflows.reporting.markdown import frame_to_markdown

PROTOCOL = Protocol()


class AttentionConfig(dg.Config):
    periods: int = Field(
        default=0, description="Pool the newest N analysed forecast periods (0: every one), as the evaluation does"
    )
    resamples: int = Field(default=PROTOCOL.resamples, ge=100, description="Block-bootstrap resamples per interval")


class PeriodAttentionConfig(dg.Config):
    """The month's attention protocol (docs/evaluation.md, "The attention protocol's sizes"); `make demo` spends
    less (`workflows/cli/demo.py`, DEMO_PROTOCOL)."""

    deletion_draws: int = Field(default=PROTOCOL.deletion_draws, ge=19, description="Position-matched null draws")
    random_draws: int = Field(default=PROTOCOL.random_draws, ge=19, description="Random-hours deletion draws")
    deletion_windows: int = Field(default=PROTOCOL.deletion_windows, ge=1, description="Most windows deleted from")
    resamples: int = Field(default=PROTOCOL.resamples, ge=100, description="Block-bootstrap resamples per interval")

    def protocol(self) -> Protocol:
        return Protocol(self.deletion_draws, self.random_draws, self.deletion_windows, self.resamples)


def evidence_folder(warehouse: WarehouseResource, symbol: str) -> Path:
    return warehouse.paths().root / "attention" / symbol / "periods"


def period_evidence(warehouse: WarehouseResource, symbol: str, newest: int = 0) -> dict[str, list[Path]]:
    """model -> its periods' evidence files, oldest first: the stored forecast periods (the newest `newest`) whose
    analysis holds every model kind. Empty: no period analysed (the model assets' own split is read)."""
    with warehouse.connect() as con:
        periods = stored_periods(con, symbol)
    folder = evidence_folder(warehouse, symbol)
    done = [p for p in periods if all((folder / p / f"{kind}.npz").exists() for kind in model_kinds())]
    if newest:
        done = done[-newest:]
    return {kind: [folder / p / f"{kind}.npz" for p in done] for kind in model_kinds()} if done else {}


@dg.asset(
    partitions_def=symbol_periods,
    ins={f"{kind}_period_model": dg.AssetIn() for kind in model_kinds()},
    deps=["forecasts"],
    pool="gpu",
    group_name="forecast_log",
    kinds={"pytorch", "numpy"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    description="The attention analysis of one symbol and month: that month's models on that month's logged hours "
    "(the hours whose forecasts are tested), with controls trained once per month and architecture.",
)
def period_attention(
    context: dg.AssetExecutionContext, config: PeriodAttentionConfig, warehouse: WarehouseResource, **models
) -> dg.MaterializeResult:
    symbol, period = partition_symbol_period(context)
    protocol = config.protocol()
    cfg = next(iter(models.values())).period_config
    with warehouse.connect() as con:
        table, _ = load_features(con, symbol)
    refs = {kind: models[f"{kind}_period_model"] for kind in model_kinds()}
    folder = evidence_folder(warehouse, symbol) / period.key
    outcome = analyse_period(
        load_period_models(table, refs, period.key, cfg),
        {kind: ref.sha256 for kind, ref in refs.items()},
        period,
        folder,
        warehouse.paths().checkpoints / symbol / "periods",
        cfg,
        protocol,
        ANALYSIS_CODE_VERSION + ("" if protocol == PROTOCOL else f"|{protocol.label()}"),
        log=lambda msg: context.log.info(f"{symbol} {msg}"),
    )
    metadata: dict = {"windows": outcome.windows, "analysed": outcome.analysed}
    if outcome.analysed:
        metadata |= {
            "reused": outcome.reused,
            "appended": outcome.appended,
            "nulls_redrawn": outcome.nulls_redrawn,
            "controls_trained": outcome.controls_trained,
            "folder": dg.MetadataValue.path(str(folder)),
        }
    if outcome.verdicts:
        metadata |= {
            "controls_reused": outcome.controls_reused,
            "verdicts": dg.MetadataValue.md(frame_to_markdown(pl.DataFrame(outcome.verdicts))),
        }
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=symbols_partitions,
    ins=MODEL_INS,
    pool="duckdb",
    group_name="analysis",
    kinds={"numpy", "duckdb"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Attention weights of every test window per model (files under attention/), summary in DuckDB.",
)
def attention_tensors(
    context: dg.AssetExecutionContext, config: AttentionConfig, warehouse: WarehouseResource, **models
) -> dict:
    symbol = partition_symbol(context)
    folder = warehouse.paths().root / "attention" / symbol
    pooled = period_evidence(warehouse, symbol, config.periods)
    if pooled:  # the forecast periods' models on their own months, concatenated
        files, rows = pooled_attention_files(symbol, pooled, folder)
        context.log.info(f"attention of the forecast periods' models: {len(next(iter(pooled.values())))} period(s)")
    else:
        _, _, loaded = load_inputs(warehouse, symbol, models)
        files, rows = model_attention_files(symbol, loaded, folder)
    prune_versions(folder, ".npz", warehouse.keep_versions, protect=files.values())
    root = warehouse.paths().root  # the table names each file relative to the data folder, like every stored path
    frame = pl.DataFrame([r | {"file": Path(r["file"]).relative_to(root).as_posix()} for r in rows])
    with warehouse.connect() as con:
        replace_table_slice(con, "attention_summary", symbol, frame)
    context.add_output_metadata(
        {
            "summary": dg.MetadataValue.md(frame_to_markdown(frame.drop("symbol", "file"))),
            "folder": dg.MetadataValue.path(str(folder)),
        }
    )
    return files


@dg.asset(
    partitions_def=symbols_partitions,
    ins={"attention_tensors": dg.AssetIn(), **MODEL_INS},
    deps=[dg.AssetDep("period_attention", partition_mapping=EVERY_PERIOD_OF_SYMBOL)],
    pool="gpu",
    group_name="analysis",
    kinds={"pytorch"},
    owners=OWNERS,
    code_version=ANALYSIS_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Attention metrics per model, pool and head with block-bootstrap intervals, against untrained "
    "and shuffled-target controls, with ablation, position-matched deletion and attribution checks.",
)
def attention_analysis(
    context: dg.AssetExecutionContext,
    config: AttentionConfig,
    warehouse: WarehouseResource,
    attention_tensors: dict,
    **models,
) -> dict:
    """dict of model name -> `AttentionAnalysis`; the JSON beside the report holds `to_dict()` of each. With
    forecast periods analysed, each model's periods pooled (their readings in `periods`); else the model assets
    on their own split."""
    symbol = partition_symbol(context)
    pooled = period_evidence(warehouse, symbol, config.periods)
    if pooled:
        evidence = {name: [load_evidence(p) for p in paths] for name, paths in pooled.items()}
        results = pool_all(evidence, context.log.info, resamples=config.resamples)
    else:
        _, _, loaded = load_inputs(warehouse, symbol, models)
        tensors = {name: load_attention(attention_tensors[name]) for name in loaded}
        analysed = analyse_all(loaded, tensors, log=context.log.info, protocol=Protocol(resamples=config.resamples))
        results = {name: a.analysis for name, a in analysed.items()}
    rows = [
        {"symbol": symbol, "model": name, "metric": metric, "median": q.median, "p25": q.p25, "p75": q.p75}
        for name, an in results.items()
        for metric, q in an.summary.quartiles().items()
    ]
    with warehouse.connect() as con:
        replace_table_slice(con, "attention_metrics", symbol, pl.DataFrame(rows))
    out_dir = warehouse.paths().reports / symbol
    payload = {name: an.to_dict() for name, an in results.items()}
    write_json_atomic(out_dir / "attention_analysis.json", payload, allow_nan=False, default=None)
    verdicts = pl.DataFrame(
        [{"model": m, **{k: str(v) for k, v in an.verdict.to_dict().items()}} for m, an in results.items()]
    )
    context.add_output_metadata(
        {
            "verdicts": dg.MetadataValue.md(frame_to_markdown(verdicts)),
            "analysis": dg.MetadataValue.path(str(out_dir / "attention_analysis.json")),
        }
    )
    return results
