import dagster as dg

from workflows.defs.assets_data import candles, features
from workflows.defs.assets_models import model_assets
from workflows.defs.partitions import symbols_partitions

# Land candles for one symbol and refresh its features, in one process.
ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(candles, features),
    partitions_def=symbols_partitions,
    executor_def=dg.in_process_executor,
    description="Land candles for one symbol (synthetic, files or exchange) and rebuild its features.",
)

# Retrain every model of one symbol on its current features.
train_job = dg.define_asset_job(
    "train_models",
    selection=dg.AssetSelection.assets(*model_assets),
    partitions_def=symbols_partitions,
    executor_def=dg.in_process_executor,
    description="Train all model kinds for one symbol on its current features.",
)

# Everything for one symbol, from candles to models: what `make demo` runs.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.assets(candles, features, *model_assets),
    partitions_def=symbols_partitions,
    executor_def=dg.in_process_executor,
    description="Candles, features and every model for one symbol.",
)
