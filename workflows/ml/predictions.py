"""A period model's checkpoint on its period's hours: its windows (refused when the features before the
period changed since it was trained) and its predictions with its attention."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from workflows.ml.checkpoints import Checkpoint
from workflows.ml.periods import ForecastPeriod, PeriodConfig, period_windows, training_slice_version
from workflows.ml.training import predict
from workflows.ml.windows import WindowData, WindowSpec


class StaleModelError(RuntimeError):
    """The checkpoint was trained on other feature data than the table holds now."""


@dataclass
class Predictions:
    """Test-split forecasts in raw log-return units, with the model's attention."""

    ret: np.ndarray
    var: np.ndarray | None
    vol: np.ndarray | None
    attention: np.ndarray
    attention_maps: np.ndarray | None
    member_attention: np.ndarray | None
    outputs: dict


def period_window_data(ckpt: Checkpoint, features: pl.DataFrame, period: str, cfg: PeriodConfig) -> WindowData:
    """A period model's windows: training and validation before the period, the period's hours as its test split
    (the hours its forecasts in the log are about). Refuses a model trained on another training slice."""
    spec = dict(ckpt.window_spec)
    spec["features"] = tuple(spec["features"])
    window_spec, p = WindowSpec(**spec), ForecastPeriod.from_key(period)
    version = training_slice_version(features, window_spec, p, cfg)
    if ckpt.data_version != version:
        raise StaleModelError(
            f"{ckpt.path.name} (period {p}) was trained on training slice {ckpt.data_version}, but the features before "
            f"{p.start:%Y-%m-%d} now hash to {version}: rematerialise that period's models"
        )
    return period_windows(features, window_spec, p, cfg, version)


def predictions(ckpt: Checkpoint, data: WindowData) -> Predictions:
    out = predict(ckpt.model, data.test.x)
    scale = data.scaler.target_scale
    var = None
    if "log_var" in out:
        var = np.exp(out["log_var"]) * scale**2
    elif "member_spread" in out:
        var = out["member_spread"] ** 2 * scale**2
    return Predictions(
        ret=out["ret"] * scale,
        var=var,
        vol=out["vol"] * scale if "vol" in out else None,
        attention=out["attention"],
        attention_maps=out.get("attention_maps"),
        member_attention=out.get("member_attention"),
        outputs=out,
    )
