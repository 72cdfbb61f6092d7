"""Model assets, one per model kind: the kind's model of the newest forecast period with stored forecasts.

They train nothing: every model is trained per period by `<kind>_period_model` (assets_periods.py). A
`<kind>_model` names the one the evaluation, the attention analysis, the report and the promotion gate read:
the newest period's, whose forecasts the log holds. With no period stored it fails and says how much more
history a period needs.
"""

import dagster as dg

from workflows.data.warehouse import load_features
from workflows.defs.assets_data import OWNERS, features
from workflows.defs.inputs import newest_period_model
from workflows.defs.partitions import EVERY_PERIOD_OF_SYMBOL, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.ml.model_ref import ModelRef
from workflows.ml.periods import PeriodConfig, history_shortfall
from workflows.ml.profiles import model_kind, model_kinds
from workflows.ml.windows import WindowSpec

# Bump when a change to the model code should retrain every model.
MODEL_CODE_VERSION = "1"


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
        description=f"{model_kind(kind).description} The newest forecast period's model (trains nothing).",
    )
    def _model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.Output:
        symbol = partition_symbol(context)
        with warehouse.connect() as con:
            newest = newest_period_model(con, symbol, kind)
            if newest is None:
                table, _ = load_features(con, symbol)
        if newest is None:
            why = history_shortfall(table, WindowSpec(), PeriodConfig())
            raise dg.Failure(
                f"no forecast period of {symbol} is stored, so there is no {kind} model to read: "
                + (
                    f"backfill the periods first (`workflows run --symbol {symbol}`, or the `forecast_period` job)"
                    if why is None
                    else why
                )
            )
        return period_output(context, newest)

    return _model


def period_output(context: dg.AssetExecutionContext, ref: ModelRef) -> dg.Output:
    metrics = ref.load().training.to_dict()
    context.log.info(
        f"{ref.kind}: the model of period {ref.month} ({ref.file_name}), whose forecasts the forecast log holds; "
        "nothing trained"
    )
    return dg.Output(
        ref,
        metadata={
            **{k: v for k, v in metrics.items() if k != "history" and v is not None},
            "period": ref.month,
            "trained": False,
            "profile": ref.profile or "?",
            "history_window": f"period {ref.month}: trained on hours before it",
            "checkpoint": dg.MetadataValue.path(ref.path),
            "sha256": ref.sha256,
        },
    )


model_assets = [build_model_asset(kind) for kind in model_kinds()]
