"""What every forecaster says for a forecast period's hours: the models' raw outputs in log-return units
(`model_forecasts`), the volatility model recalibrated on its validation hours (`recalibrated`), and the
full `ForecastSet` with the ridge controls and the volatility baselines fitted on the period's training
hours (`forecast_set`). The forecast log (`forecast_log.py`) stores these per monthly period; pooled over the
periods they are the evaluation's evidence.
"""

import numpy as np
import polars as pl
from scipy.special import softmax

from workflows.evaluation.baselines import LogRecalibration, RidgeAR, volatility_baselines
from workflows.evaluation.evidence import (
    RECALIBRATED,
    VOL_FORECASTERS,
    VOLATILITY_MODEL,
    VOLATILITY_TWIN,
    ForecastSet,
)
from workflows.ml.windows import DIRECTION_NAMES, WindowData


def model_forecasts(data: WindowData, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A model's raw outputs on `data.test` in log-return units: ret, var (predictive), vol_var (24 h),
    next_var (the next hour's variance); prob (n, 3): DOWN / STABLE / UP probabilities of a direction head."""
    scale = data.scaler.target_scale
    out = {"ret": outputs["ret"] * scale}
    if "log_var" in outputs:
        out["var"] = np.exp(outputs["log_var"]) * scale**2
    elif "member_spread" in outputs:
        out["var"] = outputs["member_spread"] ** 2 * scale**2
    if "vol" in outputs:
        out["vol_var"] = (outputs["vol"] * scale) ** 2
    if "vol_next" in outputs:
        out["next_var"] = (outputs["vol_next"] * scale) ** 2
    if "direction_logits" in outputs:
        out["prob"] = softmax(np.asarray(outputs["direction_logits"], dtype=np.float64), axis=-1)
    return out


def recalibrated(
    data: WindowData, val: dict[str, np.ndarray], test: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The volatility model's test forecasts recalibrated in logs (`LogRecalibration`) on the fold's
    validation slice (hours it was not trained on): `vol_var_recalibrated`, `next_var_recalibrated`."""
    scale = data.scaler.target_scale
    realised = {"vol_var": (data.val.vol.astype(np.float64) * scale) ** 2, "next_var": data.val.raw_ret**2}
    out, errors = {}, {}
    for key, target in realised.items():
        if key not in val or key not in test:
            continue
        try:
            out[f"{key}_recalibrated"] = LogRecalibration.fit(val[key], target).apply(test[key])
        except (ValueError, np.linalg.LinAlgError) as exc:
            errors[f"recalibration of {key}"] = str(exc)
    return out, errors


def base_rates(direction: np.ndarray, classes: int = len(DIRECTION_NAMES)) -> np.ndarray:
    """Class frequencies of the training hours: the base-rate forecast of the direction probabilities."""
    counts = np.bincount(np.asarray(direction, dtype=np.int64), minlength=classes).astype(np.float64)
    return counts / counts.sum() if counts.sum() else np.full(classes, 1.0 / classes)


def forecast_set(
    features: pl.DataFrame, data: WindowData, model_outputs: dict[str, dict[str, np.ndarray]], fold: int = 1
) -> tuple[ForecastSet, dict[str, str]]:
    """Every forecaster on `data.test`: the models' outputs, the ridge controls and the volatility
    baselines, all fitted on `data.train` (and `data.val` for the ridge penalty)."""
    frame = features.sort("ts")
    returns = frame["log_return"].to_numpy().astype(np.float64)
    ts = frame["ts"].to_numpy()
    scale = data.scaler.target_scale
    n = len(data.test)
    fs = ForecastSet(
        end_ts=data.test.end_ts,
        fold=np.full(n, fold),
        actual=data.test.raw_ret,
        train_mean=np.full(n, float(np.mean(data.train.raw_ret))),
        realised_var=(data.test.vol.astype(np.float64) * scale) ** 2,
        direction=np.asarray(data.test.direction, dtype=np.int64),
        base_rates=np.tile(base_rates(data.train.direction), (n, 1)),
    )
    for name, out in model_outputs.items():
        if name not in (VOLATILITY_MODEL, VOLATILITY_TWIN):  # the volatility model's return head is not trained
            fs.returns[name] = out["ret"]
        if "var" in out:
            fs.variances[name] = out["var"]
        if (name in VOL_FORECASTERS or name == VOLATILITY_TWIN) and "vol_var" in out:
            fs.vol_var[name] = out["vol_var"]
        if name in (VOLATILITY_MODEL, VOLATILITY_TWIN) and "next_var" in out:
            fs.next_var[name] = out["next_var"]
        if name == VOLATILITY_MODEL and "vol_var_recalibrated" in out:
            fs.vol_var[RECALIBRATED] = out["vol_var_recalibrated"]
        if name == VOLATILITY_MODEL and "next_var_recalibrated" in out:
            fs.next_var[RECALIBRATED] = out["next_var_recalibrated"]
        if "prob" in out:
            fs.probabilities[name] = out["prob"]
    features_seen = list(data.spec.features)
    if "log_return" in features_seen:
        j = features_seen.index("log_return")
        ar = RidgeAR.fit(data.train.x[:, :, j], data.train.ret, data.val.x[:, :, j], data.val.ret)
        fs.returns["ridge_ar48"] = ar.predict(data.test.x[:, :, j]) * scale
    ridge = RidgeAR.fit(data.train.x, data.train.ret, data.val.x, data.val.ret)
    fs.returns["ridge_features"] = ridge.predict(data.test.x) * scale
    origins = np.searchsorted(ts, data.test.end_ts)
    train_lo = int(np.searchsorted(ts, data.train.end_ts.min())) - (data.spec.window - 1)
    train_hi = int(np.searchsorted(ts, data.train.end_ts.max())) + 1
    hours = ts.astype("datetime64[h]").astype(np.int64)  # the seasonal baselines' hour of day
    log_volume = frame["log_volume"].to_numpy().astype(np.float64) if "log_volume" in frame.columns else None
    baselines, errors = volatility_baselines(
        returns, max(train_lo, 1), train_hi, origins, (1, data.spec.vol_horizon), hours, log_volume
    )
    fs.vol_var.update(baselines[data.spec.vol_horizon])
    fs.next_var.update(baselines[1])
    return fs, errors
