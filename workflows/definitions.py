import dagster as dg

from workflows.defs.assets_data import candles, features
from workflows.defs.jobs import ingest_job
from workflows.defs.resources import WarehouseResource

defs = dg.Definitions(
    assets=[candles, features],
    jobs=[ingest_job],
    resources={"warehouse": WarehouseResource()},
    executor=dg.in_process_executor,
)
