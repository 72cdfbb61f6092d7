import dagster as dg

from workflows.defs.assets_data import candles, features
from workflows.defs.partitions import symbols_partitions

# Land candles for one symbol and refresh its features, in one process.
ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(candles, features),
    partitions_def=symbols_partitions,
    executor_def=dg.in_process_executor,
    description="Land candles for one symbol (synthetic, files or exchange) and rebuild its features.",
)
