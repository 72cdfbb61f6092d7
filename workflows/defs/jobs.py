import dagster as dg

from workflows.defs.assets_analysis import evaluation, report
from workflows.defs.assets_attention import attention_analysis, attention_tensors, period_attention
from workflows.defs.assets_data import candles, features
from workflows.defs.assets_models import model_assets
from workflows.defs.assets_periods import forecasts, period_model_assets
from workflows.defs.assets_serving import latest_forecast, production_model
from workflows.defs.partitions import symbol_periods

SERVING_ASSETS = (production_model, latest_forecast)

# Land candles only: what the sensor runs; features follow by declarative automation.
candles_job = dg.define_asset_job(
    "land_candles",
    selection=dg.AssetSelection.assets(candles),
    executor_def=dg.in_process_executor,
    description="Land candles for one symbol from files, the exchange or the synthetic generator.",
)

# Land candles for one symbol and refresh its features, in one process.
ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(candles, features),
    executor_def=dg.in_process_executor,
    description="Land candles for one symbol (synthetic, files or exchange) and rebuild its features.",
)

ANALYSIS_ASSETS = (evaluation, attention_tensors, attention_analysis, report)

# Evaluation, attention and report for one symbol's newest period models.
analysis_job = dg.define_asset_job(
    "analysis",
    selection=dg.AssetSelection.assets(*ANALYSIS_ASSETS),
    executor_def=dg.in_process_executor,
    description="Evaluate the models, extract and analyse attention, write the report.",
)

# The daily report: the model assets point at the newest period's models (nothing trains: the periods'
# models train in `forecast_period`), then everything that depends on them.
refresh_report_job = dg.define_asset_job(
    "refresh_report",
    selection=dg.AssetSelection.assets(*model_assets, *ANALYSIS_ASSETS, *SERVING_ASSETS),
    executor_def=dg.in_process_executor,
    description="Read one symbol's newest period models (trains nothing), re-pool the forecast log's evaluation, "
    "analyse attention, report, gate and forecast.",
)

# Everything for one symbol, from candles to the report, once its periods are backfilled: what `make demo` runs
# after the `forecast_period` runs.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.assets(candles, features, *model_assets, *ANALYSIS_ASSETS, *SERVING_ASSETS),
    executor_def=dg.in_process_executor,
    description="Candles, features, the newest period models, evaluation, attention analysis, report, gate and "
    "forecast for one symbol (its forecast periods backfilled first by `forecast_period`).",
)


# One symbol x month: its period models (trained once, warm-started; reused when current), its forecasts
# (only the hours not yet stored) and its attention analysis (controls trained once per month, then reused).
# A backfill of these partitions, oldest first, fills the forecast log month by month.
forecast_period_job = dg.define_asset_job(
    "forecast_period",
    selection=dg.AssetSelection.assets(*period_model_assets, forecasts, period_attention),
    partitions_def=symbol_periods,
    executor_def=dg.in_process_executor,
    description="The period models, forecasts and attention analysis of one symbol and month: the forecast log's "
    "unit of work.",
)

# The same unit of work with its independent steps side by side: the period models and twins train in separate
# processes, at most `max_concurrent` at once (run config `execution.config.max_concurrent`; `workflows run` and
# `demo` set it from `--workers`), each claiming a CPU training slot with one share of the cores
# (`ml/placement.py`); the forecasts and the attention analysis follow. Each step starts its own process (a few
# seconds each): worth it when a month's trainings take minutes.
forecast_period_parallel_job = dg.define_asset_job(
    "forecast_period_parallel",
    selection=forecast_period_job.selection,
    partitions_def=symbol_periods,
    executor_def=dg.multiprocess_executor,
    description="forecast_period with its independent steps (the period models and twins) in parallel processes.",
)


@dg.definitions
def jobs() -> dg.Definitions:
    # A module with a @dg.definitions function contributes only what that function returns.
    # One process per run: the DuckDB file and the training loop are not shared across processes.
    return dg.Definitions(
        jobs=[
            candles_job,
            ingest_job,
            analysis_job,
            refresh_report_job,
            pipeline_job,
            forecast_period_job,
            forecast_period_parallel_job,
        ],
        executor=dg.in_process_executor,
    )
