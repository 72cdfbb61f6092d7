import dagster as dg

from workflows.defs.assets_data import candles, features
from workflows.defs.assets_models import model_assets
from workflows.defs.jobs import ingest_job, pipeline_job, train_job
from workflows.defs.resources import WarehouseResource

defs = dg.Definitions(
    assets=[candles, features, *model_assets],
    jobs=[ingest_job, train_job, pipeline_job],
    resources={"warehouse": WarehouseResource()},
    executor=dg.in_process_executor,
)
