import dagster as dg

from workflows.defs.assets_analysis import attention_analysis, attention_tensors, evaluation, report
from workflows.defs.assets_data import candles, features
from workflows.defs.assets_models import model_assets
from workflows.defs.jobs import analysis_job, ingest_job, pipeline_job, train_job
from workflows.defs.resources import WarehouseResource

defs = dg.Definitions(
    assets=[candles, features, *model_assets, evaluation, attention_tensors, attention_analysis, report],
    jobs=[ingest_job, train_job, analysis_job, pipeline_job],
    resources={"warehouse": WarehouseResource()},
    executor=dg.in_process_executor,
)
