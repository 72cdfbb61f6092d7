"""The forecast log in Dagster: period models and their forecasts, partitioned by symbol x month.

* `<kind>_period_model` (the six model kinds and the two no-attention twins): the
  model of one symbol and forecast period, trained on hours before the period and
  warm-started from the same asset's previous period (a self-dependency). It trains
  only when its training key changed (`workflows.ml.period_models`); otherwise it
  returns the registered checkpoint and trains nothing.
* `forecasts`: every model's, control's and baseline's forecasts for the period's
  hours, stored once in DuckDB's `forecast_log` with the versions that made them;
  a rerun adds only the hours not yet stored.

`code_version` is set on every asset, so a bump marks every period stale in the UI;
a backfill of the periods rebuilds them (`workflows run` backfills what the history
allows).
"""

import dagster as dg
from pydantic import Field

from workflows.data.warehouse import load_features
from workflows.defs.assets_data import OWNERS, features
from workflows.defs.assets_models import MODEL_CODE_VERSION
from workflows.defs.partitions import PREVIOUS_PERIOD, partition_symbol_period, symbol_periods
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.forecast_log import FORECAST_CODE_VERSION, update_period
from workflows.ml.model_ref import ModelRef
from workflows.ml.period_models import train_period_model
from workflows.ml.periods import PeriodConfig
from workflows.ml.placement import place_training
from workflows.ml.profiles import ProfileChoice, first_member_of, period_kinds, period_recipe, resolve_profile

PERIOD_KINDS = period_kinds()
DEFAULTS = PeriodConfig()


class PeriodTrainingConfig(dg.Config):
    profile: ProfileChoice = Field(default="", description="ci | cpu | full; empty: $WORKFLOWS_PROFILE, else cpu")
    device: str = Field(default="auto", description="auto (CUDA, MPS, CPU) or a torch device such as cpu / cuda")
    train_days: int = Field(default=DEFAULTS.train_days, description="Most days of history a period trains on")
    min_train_days: int = Field(default=DEFAULTS.min_train_days, description="Fewest training days a period needs")
    val_days: int = Field(default=DEFAULTS.val_days, description="Validation days before the period")
    warm_epochs: int = Field(default=DEFAULTS.warm_epochs, description="Most epochs of a warm-started period")
    max_epochs: int = Field(default=0, description="Cap on every training's epochs (0: the profile's); for quick looks")

    def period_config(self) -> PeriodConfig:
        return PeriodConfig(self.train_days, self.min_train_days, self.val_days, self.warm_epochs)


def build_period_model_asset(kind: str) -> dg.AssetsDefinition:
    name = f"{kind}_period_model"
    first_member = first_member_of(kind)
    shares = [dg.AssetDep(f"{first_member}_period_model")] if first_member else []

    @dg.asset(
        name=name,
        partitions_def=symbol_periods,
        deps=[features, dg.AssetDep(name, partition_mapping=PREVIOUS_PERIOD), *shares],
        pool="gpu",
        group_name="forecast_log",
        kinds={"pytorch"},
        owners=OWNERS,
        code_version=MODEL_CODE_VERSION,
        description=f"The {kind} model of one symbol and month: trained once on hours before the month, "
        "warm-started from the previous month's.",
    )
    def _model(
        context: dg.AssetExecutionContext, config: PeriodTrainingConfig, warehouse: WarehouseResource
    ) -> dg.Output:
        symbol, period = partition_symbol_period(context)
        profile, cfg = resolve_profile(config.profile or None), config.period_config()
        with warehouse.connect() as con:
            table, _ = load_features(con, symbol)
        with place_training(config.device, log=context.log.info) as placement:
            recipe = period_recipe(kind, profile, config.max_epochs, placement.device)
            folder = warehouse.paths().checkpoints / symbol / "periods" / period.key
            model = train_period_model(
                warehouse.connect, table, symbol, kind, recipe, period, cfg, folder, MODEL_CODE_VERSION, profile,
                log=context.log.info, first_member_kind=first_member,
            )  # fmt: skip
        meta = model.metadata() | {"checkpoint": dg.MetadataValue.path(model.path)}
        return dg.Output(model.ref(cfg), metadata=meta)

    return _model


period_model_assets = [build_period_model_asset(kind) for kind in PERIOD_KINDS]


@dg.asset(
    partitions_def=symbol_periods,
    ins={f"{kind}_period_model": dg.AssetIn() for kind in PERIOD_KINDS},
    deps=[features],
    pool="duckdb",
    group_name="forecast_log",
    kinds={"duckdb"},
    owners=OWNERS,
    code_version=FORECAST_CODE_VERSION,
    description="Every model's, control's and baseline's forecasts for one symbol and month, stored once in "
    "the forecast_log table with the model, code and data versions that made them.",
)
def forecasts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, **models: ModelRef
) -> dg.MaterializeResult:
    symbol, period = partition_symbol_period(context)
    configs = {ref.period_config for ref in models.values()}
    if len(configs) != 1:
        raise dg.Failure(f"the period models of {symbol} {period} were trained with different period settings")
    cfg = configs.pop()
    checkpoints = {ref.kind: ref.load() for ref in models.values()}
    with warehouse.connect() as con:
        table, _ = load_features(con, symbol)
        update = update_period(con, table, symbol, period, checkpoints, cfg)
    state = "complete" if update.complete else f"open: waiting for targets through {update.waiting_for}"
    context.log.info(
        f"{symbol} {period}: {update.origins_added} new hours forecast ({update.reason}); "
        f"{update.test_hours} of {period.hours} hours stored ({state})"
    )
    return dg.MaterializeResult(
        metadata={
            "hours_added": update.origins_added,
            "hours_stored": update.test_hours,
            "hours_expected": update.expected_hours,  # origins whose windows and targets have landed
            "hours_in_month": period.hours,
            "complete": update.complete,
            "waiting_for": update.waiting_for or "nothing",
            "recomputed": update.recomputed,
            "reason": update.reason,
            "rows_written": update.rows_written,
            "rows_replaced": update.rows_deleted,
            "baseline_errors": ", ".join(update.errors) or "none",
        }
    )
