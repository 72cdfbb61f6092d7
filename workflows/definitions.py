import dagster as dg

from workflows.defs.assets_analysis import evaluation, report
from workflows.defs.assets_attention import attention_analysis, attention_tensors
from workflows.defs.assets_data import candles, features
from workflows.defs.assets_models import model_assets
from workflows.defs.assets_serving import latest_forecast, production_model
from workflows.defs.executors import celery_jobs
from workflows.defs.automation import automation_sensor, daily_retrain, hourly_exchange_ingest, incoming_files
from workflows.defs.jobs import analysis_job, candles_job, ingest_job, pipeline_job, retrain_job, train_job
from workflows.defs.resources import WarehouseResource

defs = dg.Definitions(
    assets=[
        candles,
        features,
        *model_assets,
        evaluation,
        attention_tensors,
        attention_analysis,
        report,
        production_model,
        latest_forecast,
    ],
    jobs=[ingest_job, candles_job, train_job, analysis_job, retrain_job, pipeline_job, *celery_jobs],
    schedules=[daily_retrain, hourly_exchange_ingest],
    sensors=[incoming_files, automation_sensor],
    resources={"warehouse": WarehouseResource()},
    executor=dg.in_process_executor,
)
