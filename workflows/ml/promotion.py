"""The promotion gate and the served forecast.

A production pointer (`production.json` beside a symbol's checkpoints) names the
checkpoint that serves forecasts. A candidate replaces it only when, on the same
recent test hours, its MSE is no worse than the current production model's and no
worse than the zero-return forecast's. The comparison is kept either way.
"""

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import torch

from workflows.ml.checkpoints import Checkpoint, load_checkpoint
from workflows.ml.training import predict
from workflows.ml.windows import DIRECTION_NAMES, WindowSpec, _prepare

POINTER = "production.json"


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    hours: int
    mse_candidate: float
    mse_current: float | None
    mse_zero: float

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _spec(ckpt: Checkpoint) -> WindowSpec:
    d = dict(ckpt.window_spec)
    d["features"] = tuple(d["features"])
    return WindowSpec(**d)


def inputs_at(ckpt: Checkpoint, features: pl.DataFrame, end_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's own scaled inputs for windows ending at `end_ts`, and the next-hour returns.

    Each model sees the hours through its own scaler and feature list, so two models
    with different training data are compared on exactly the same hours."""
    spec = _spec(ckpt)
    frame, values, ret_all, ends, _ = _prepare(features, spec)
    ts = frame["ts"].to_numpy()
    rows = np.searchsorted(ts, end_ts)
    valid = set(ends.tolist())
    keep = np.array([r in valid for r in rows])
    rows = rows[keep]
    scaled = ckpt.scaler.transform(values)
    offsets = np.arange(-(spec.window - 1), 1)
    return scaled[rows[:, None] + offsets[None, :]], ret_all[rows + 1]


def gate(candidate: Checkpoint, current: Checkpoint | None, features: pl.DataFrame, end_ts: np.ndarray) -> GateDecision:
    x_c, y = inputs_at(candidate, features, end_ts)
    f_c = predict(candidate.model, x_c)["ret"] * candidate.scaler.target_scale
    mse_c = float(np.mean((f_c - y) ** 2))
    mse_zero = float(np.mean(y**2))
    mse_cur = None
    if current is not None:
        x_p, y_p = inputs_at(current, features, end_ts)
        f_p = predict(current.model, x_p)["ret"] * current.scaler.target_scale
        mse_cur = float(np.mean((f_p - y_p) ** 2))
    if mse_c > mse_zero:
        return GateDecision(False, "worse than the zero-return forecast", len(y), mse_c, mse_cur, mse_zero)
    if mse_cur is not None and mse_c > mse_cur:
        return GateDecision(False, "worse than the current production model", len(y), mse_c, mse_cur, mse_zero)
    return GateDecision(True, "no worse than the zero-return forecast"
                        + ("" if mse_cur is None else " and the current production model"), len(y), mse_c, mse_cur,
                        mse_zero)


def read_pointer(folder: Path) -> dict | None:
    path = folder / POINTER
    return json.loads(path.read_text()) if path.exists() else None


def write_pointer(folder: Path, ckpt_path: str, sha256: str, decision: GateDecision) -> dict:
    pointer = {"path": ckpt_path, "sha256": sha256, "promoted_at": datetime.now(timezone.utc).isoformat(),
               "gate": decision.to_dict()}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(pointer, indent=1))
    os.replace(tmp, folder / POINTER)
    return pointer


def load_current(folder: Path) -> Checkpoint | None:
    pointer = read_pointer(folder)
    if pointer is None or not Path(pointer["path"]).exists():
        return None
    return load_checkpoint(pointer["path"], pointer["sha256"])


def forecast_next_hour(ckpt: Checkpoint | None, features: pl.DataFrame) -> dict:
    """Next-hour forecast from the newest complete window; the zero forecast when no model serves."""
    last = features["ts"].max()
    base = {"as_of_candle": last.isoformat(), "forecast_hour": (last + timedelta(hours=1)).isoformat()}
    if ckpt is None:
        return {**base, "model": "zero-return forecast (no model has passed the promotion gate)",
                "return_pct": 0.0, "interval_80_pct": None, "interval_95_pct": None, "direction_probabilities": None}
    spec = _spec(ckpt)
    frame, values, _, _, ts_hours = _prepare(features, spec)
    t = frame.height - 1
    segment = frame["segment"].to_numpy()
    if t < spec.window - 1 or ts_hours[t] - ts_hours[t - spec.window + 1] != spec.window - 1 or \
            segment[t] != segment[t - spec.window + 1]:
        raise ValueError(f"the newest {spec.window} feature hours are not consecutive: cannot forecast yet")
    window = ckpt.scaler.transform(values[t - spec.window + 1 : t + 1])[None]
    with torch.no_grad():
        out = predict(ckpt.model, window)
    scale = ckpt.scaler.target_scale
    ret = float(out["ret"][0] * scale)
    result = {**base, "model": ckpt.path.name, "return_pct": 100 * ret}
    if "log_var" in out:
        sd = math.sqrt(math.exp(float(out["log_var"][0]))) * scale
        result["interval_80_pct"] = [100 * (ret - 1.2816 * sd), 100 * (ret + 1.2816 * sd)]
        result["interval_95_pct"] = [100 * (ret - 1.96 * sd), 100 * (ret + 1.96 * sd)]
    if "direction_logits" in out:
        probs = torch.softmax(torch.as_tensor(out["direction_logits"][0]), -1).tolist()
        result["direction_probabilities"] = dict(zip(DIRECTION_NAMES, probs))
    return result
