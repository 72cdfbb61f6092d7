"""Evaluate a trained checkpoint on its test split: returns, direction, intervals, volatility."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from workflows.evaluation.forecasts import evaluate_returns, evaluate_volatility, garch_variance_forecasts
from workflows.ml.checkpoints import Checkpoint
from workflows.ml.training import predict
from workflows.ml.windows import WindowData, WindowSpec, build_windows


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


def window_data_for(ckpt: Checkpoint, features: pl.DataFrame, data_version: str) -> WindowData:
    if ckpt.data_version != data_version:
        raise StaleModelError(
            f"{ckpt.path.name} was trained on features version {ckpt.data_version} but the table now holds "
            f"{data_version}: rematerialise the model assets first"
        )
    spec = dict(ckpt.window_spec)
    spec["features"] = tuple(spec["features"])
    return build_windows(features, WindowSpec(**spec), data_version=data_version)


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


def _trailing_rms(returns: np.ndarray, idx: np.ndarray, window: int = 24) -> np.ndarray:
    return np.sqrt(np.array([np.mean(returns[max(0, i - window + 1) : i + 1] ** 2) for i in idx]))


def evaluate(ckpt: Checkpoint, data: WindowData, features: pl.DataFrame, preds: Predictions) -> dict:
    """Every forecast metric of one model on its test split, with baselines and tests."""
    frame = features.sort("ts")
    returns = frame["log_return"].to_numpy()
    ts = frame["ts"].to_numpy()
    train_end_idx = int(np.searchsorted(ts, data.train.end_ts.max(), side="right"))
    train_mean = float(np.mean(returns[1:train_end_idx]))
    result = {"returns": evaluate_returns(preds.ret, data.test.raw_ret, train_mean, preds.var)}
    if preds.vol is not None:
        origins = np.searchsorted(ts, data.test.end_ts)
        realised = data.test.vol * data.scaler.target_scale
        baselines = {
            "rolling_24h": _trailing_rms(returns, origins),
            "constant_train": np.full(len(origins), float(np.sqrt(np.mean(returns[1:train_end_idx] ** 2)))),
        }
        try:
            baselines["garch_1_1"] = np.sqrt(garch_variance_forecasts(returns, train_end_idx, origins))
        except Exception as exc:  # the fit can fail on degenerate data; say so rather than hide it
            result["garch_error"] = str(exc).splitlines()[0][:200]
        result["volatility"] = evaluate_volatility(preds.vol, realised, baselines)
    if "direction_logits" in preds.outputs:
        predicted_class = preds.outputs["direction_logits"].argmax(axis=1)
        actual = data.test.direction
        majority = np.bincount(data.train.direction, minlength=3).argmax()
        result["direction_classes"] = {
            "accuracy": float(np.mean(predicted_class == actual)),
            "majority_class_accuracy": float(np.mean(actual == majority)),
            "class_shares_test": np.bincount(actual, minlength=3).tolist(),
        }
    return result
