"""The promotion gate (`production_model`) and the served forecast (`latest_forecast`)."""

import dagster as dg
import polars as pl

from workflows.defs.assets_data import OWNERS
from workflows.defs.partitions import EAGER_AFTER_CHECKS, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.run import window_data_for
from workflows.features import FEATURE_COLUMNS
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.promotion import forecast_next_hour, gate, load_current, read_pointer, write_pointer
from workflows.reporting.markdown import frame_to_markdown
from workflows.warehouse import load_table_slice, replace_table_slice, slice_fingerprint

SERVED_KIND = "multitask"  # the model with a predictive variance and direction classes
SERVING_CODE_VERSION = "1"
FORECASTS_DDL = (
    "CREATE TABLE IF NOT EXISTS forecasts (symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, model VARCHAR, "
    "return_pct DOUBLE, lo80_pct DOUBLE, hi80_pct DOUBLE, p_down DOUBLE, p_stable DOUBLE, p_up DOUBLE)"
)


@dg.asset(
    partitions_def=symbols_partitions,
    ins={"candidate": dg.AssetIn(f"{SERVED_KIND}_model")},
    deps=["features"],
    group_name="serving", kinds={"pytorch"}, owners=OWNERS, code_version=SERVING_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    check_specs=[dg.AssetCheckSpec(
        "promotion_gate", asset="production_model", blocking=True,
        description="The candidate replaces production only if, on the same recent test hours, it is no worse "
                    "than the current production model and than the zero-return forecast.")],
    description=f"Pointer to the {SERVED_KIND} checkpoint that serves forecasts, moved only through the gate.",
)
def production_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource, candidate: dict):
    symbol = context.partition_key
    folder = warehouse.paths().checkpoints / symbol
    with warehouse.connect() as con:
        table = load_table_slice(con, "features", symbol)
        version = slice_fingerprint(con, "features", symbol, ["ts", *FEATURE_COLUMNS])
    ckpt = load_checkpoint(candidate["path"], candidate["sha256"])
    data = window_data_for(ckpt, table, version)
    current = load_current(folder)
    decision = gate(ckpt, current, table, data.test.end_ts)
    pointer = write_pointer(folder, candidate["path"], candidate["sha256"], decision) if decision.promoted \
        else read_pointer(folder)
    context.log.info(f"promotion gate: {'PROMOTED' if decision.promoted else 'REFUSED'} ({decision.reason})")
    comparison = pl.DataFrame([
        {"forecast": "candidate", "test_mse": decision.mse_candidate},
        {"forecast": "current production", "test_mse": decision.mse_current},
        {"forecast": "zero return", "test_mse": decision.mse_zero},
    ])
    table_md = dg.MetadataValue.md(frame_to_markdown(comparison))
    return dg.MaterializeResult(
        metadata={"promoted": decision.promoted, "reason": decision.reason, "comparison": table_md,
                  "serving": (pointer or {}).get("path", "zero-return forecast (nothing promoted yet)")},
        check_results=[dg.AssetCheckResult(
            check_name="promotion_gate", passed=decision.promoted,
            # A refusal keeps the current model serving; it warns rather than stopping the forecast.
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"reason": decision.reason, "hours": decision.hours, "comparison": table_md})],
    )


@dg.asset(
    partitions_def=symbols_partitions,
    deps=[production_model, "features"],
    pool="duckdb", group_name="serving", kinds={"duckdb"}, owners=OWNERS, code_version=SERVING_CODE_VERSION,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Next-hour return, direction probabilities and an interval from the production model.",
)
def latest_forecast(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    symbol = context.partition_key
    with warehouse.connect() as con:
        table = load_table_slice(con, "features", symbol)
    current = load_current(warehouse.paths().checkpoints / symbol)
    forecast = forecast_next_hour(current, table)
    probs = forecast.get("direction_probabilities") or {}
    lo, hi = (forecast.get("interval_80_pct") or [None, None])
    row = pl.DataFrame([{
        "symbol": symbol, "ts": pl.Series([forecast["forecast_hour"]]).str.to_datetime(time_zone="UTC")[0],
        "model": forecast["model"], "return_pct": forecast["return_pct"], "lo80_pct": lo, "hi80_pct": hi,
        "p_down": probs.get("DOWN"), "p_stable": probs.get("STABLE"), "p_up": probs.get("UP"),
    }])
    with warehouse.connect() as con:
        replace_table_slice(con, "forecasts", symbol, row, FORECASTS_DDL)
    context.log.info(f"{symbol} {forecast['forecast_hour']}: {forecast['return_pct']:+.4f}% ({forecast['model']})")
    return dg.MaterializeResult(metadata={k: (str(v) if isinstance(v, (dict, list)) or v is None else v)
                                          for k, v in forecast.items()})
