"""What the analysis assets load: features, their version, and each model's checkpoint."""

import dagster as dg

from workflows.data.warehouse import candle_sources, load_features
from workflows.defs.resources import WarehouseResource
from workflows.evaluation.forecast_log import stored_periods
from workflows.ml.model_ref import ModelRef
from workflows.ml.period_models import registered, registered_config
from workflows.ml.predictions import period_window_data
from workflows.ml.profiles import model_kinds
from workflows.serving.gate_closes import Candidate

ANALYSIS_CODE_VERSION = "3"
MODEL_INS = {f"{kind}_model": dg.AssetIn(f"{kind}_model") for kind in model_kinds()}


def load_inputs(warehouse: WarehouseResource, symbol: str, models: dict[str, ModelRef]):
    """Features, and each model's checkpoint with its period's test windows."""
    with warehouse.connect() as con:
        table, version = load_features(con, symbol)
        sources = candle_sources(con, symbol)
    loaded = {}
    for kind in model_kinds():  # reference first, in a fixed order
        ref = models[f"{kind}_model"]
        ckpt = ref.load()  # the checkpoint the upstream run produced
        loaded[kind] = (ckpt, model_window_data(ref, ckpt, table, version))
    return table, sources, loaded


def model_window_data(ref: ModelRef, ckpt, table, version: str):
    """A model asset's windows: its period's (test = the period's logged hours). `version` is unused: the
    period's training slice is hashed from `table` itself."""
    return period_window_data(ckpt, table, ref.period, ref.period_config)


def newest_period_model(con, symbol: str, kind: str) -> ModelRef | None:
    """The ref of `kind`'s model of the newest period with stored forecasts (None: no such period): the model
    whose forecasts the log holds, analysed on the same hours, and the serving candidate."""
    for period in reversed(stored_periods(con, symbol)):
        model = registered(con, symbol, period, kind)
        cfg = registered_config(con, symbol, period, kind)
        if model is not None and cfg is not None:
            return model.ref(cfg)
    return None


def period_candidates(con, symbol: str, kind: str) -> list[Candidate]:
    """`kind`'s model of every period with stored forecasts, oldest first: the gate's candidates, month by month."""
    found = [(period, registered(con, symbol, period, kind)) for period in stored_periods(con, symbol)]
    return [Candidate(period, str(m.path), m.sha256) for period, m in found if m is not None]
