"""What the analysis assets load: features, their version, and each model's checkpoint."""

import dagster as dg
from pydantic import Field

from workflows.data.warehouse import candle_sources, load_features
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.run import window_data_for
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.profiles import model_kinds

ANALYSIS_CODE_VERSION = "2"
MODEL_INS = {f"{kind}_model": dg.AssetIn(f"{kind}_model") for kind in model_kinds()}


HISTORY_DAYS_FIELD = Field(
    default=None,
    description="The last N days of features (as the models were trained: empty follows the model assets; 0: all)",
)


class HistoryConfig(dg.Config):
    history_days: int | None = HISTORY_DAYS_FIELD


def models_history_days(models: dict, requested: int | None = None) -> int | None:
    """The history window the analysis uses: `requested` when given, else the one every model asset was
    trained on (they must agree)."""
    if requested is not None:
        return requested or None
    windows = {ref.get("history_days") or None for ref in models.values()}
    if len(windows) > 1:
        raise dg.Failure(
            f"the model assets were trained on different history windows ({sorted(map(str, windows))} days): "
            "rematerialise them with one `history_days` (workflows run --history-days N)"
        )
    return windows.pop() if windows else None


def load_inputs(warehouse: WarehouseResource, symbol: str, models: dict, history_days: int | None = None):
    """Features (the models' history window, or `history_days`), and each model's checkpoint with its
    test windows."""
    days = models_history_days(models, history_days)
    with warehouse.connect() as con:
        table, version = load_features(con, symbol, days)
        sources = candle_sources(con, symbol)
    loaded = {}
    for kind in model_kinds():  # reference first, in a fixed order
        ref = models[f"{kind}_model"]
        ckpt = load_checkpoint(ref["path"], ref["sha256"])  # the checkpoint the upstream run produced
        loaded[kind] = (ckpt, window_data_for(ckpt, table, version))
    return table, sources, loaded
