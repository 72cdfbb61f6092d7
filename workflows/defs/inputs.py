"""What the analysis assets load: features, their version, and each model's checkpoint."""

import dagster as dg

from workflows.defs.resources import WarehouseResource
from workflows.evaluation.run import window_data_for
from workflows.features import FEATURE_COLUMNS
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.profiles import MODEL_KINDS
from workflows.warehouse import candle_sources, load_table_slice, slice_fingerprint

ANALYSIS_CODE_VERSION = "2"
MODEL_INS = {f"{kind}_model": dg.AssetIn(f"{kind}_model") for kind in MODEL_KINDS}


def load_inputs(warehouse: WarehouseResource, symbol: str, models: dict):
    """Features, their version, and each model's checkpoint with its test windows."""
    with warehouse.connect() as con:
        table = load_table_slice(con, "features", symbol)
        version = slice_fingerprint(con, "features", symbol, ["ts", *FEATURE_COLUMNS])
        sources = candle_sources(con, symbol)
    loaded = {}
    for kind in MODEL_KINDS:  # reference first, in a fixed order
        ref = models[f"{kind}_model"]
        ckpt = load_checkpoint(ref["path"], ref["sha256"])  # the checkpoint the upstream run produced
        loaded[kind] = (ckpt, window_data_for(ckpt, table, version))
    return table, sources, loaded
