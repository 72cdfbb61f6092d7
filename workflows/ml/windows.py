"""Model windows from the `features` table: inputs, targets, chronological splits.

A window ending at hour t holds the feature rows t-W+1 .. t (W = 48 by default),
all of them consecutive hours of one segment: a window never spans a gap. Its
targets are about the hours after t:

* `ret`: the log return of hour t+1 (the next candle);
* `vol`: the realised volatility of hours t+1 .. t+24 (root mean square of their
  log returns), which also must be consecutive;
* `direction`: DOWN (0) / STABLE (1) / UP (2) for `ret` below -threshold, within,
  or above +threshold (default 0.5%).

Position p of a window (0 = oldest, W-1 = newest) is `W - p` hours before the
predicted hour, so a dependency of r(t+1) on the return k hours earlier sits at
position W - k, and "hours ago" in the analysis means this lag.

Splits are chronological (train, then validation, then test) with an embargo of
W + 24 hours between them, so no input or target hour of one split appears in
another. Feature scalers are fitted on the training rows only; the return and
volatility targets are divided by the training returns' standard deviation (not
centred, so zero stays "no move").
"""

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import polars as pl

from workflows.data.features import REFERENCE_FEATURES

DOWN, STABLE, UP = 0, 1, 2
DIRECTION_NAMES = ("DOWN", "STABLE", "UP")

# Model inputs computed from a `features` column when the windows are cut (not stored):
# the size of a return, which volatility models need (a linear map of the signed
# return cannot weight hours by how large their moves were).
# Realised-variance summaries (the HAR regressors, in logs): the log of the mean squared return over
# the last 1, 24 and 168 hours up to and including the row's own hour, within its segment (never across
# a gap, never a later hour), floored at RV_FLOOR so a flat hour stays finite.
RV_FLOOR = 1e-8  # (0.01%)^2: below any hour's squared return that matters
RV_SUMMARY_HOURS = {"log_rv_1h": 1, "log_rv_24h": 24, "log_rv_168h": 168}


def _log_rv(hours: int) -> pl.Expr:
    squared = pl.col("log_return").fill_null(0.0).pow(2)
    mean = squared if hours == 1 else squared.rolling_mean(hours, min_samples=1)
    return (mean.over("segment") + RV_FLOOR).log()


DERIVED_FEATURES: dict[str, pl.Expr] = {
    "abs_log_return": pl.col("log_return").abs(),
    **{name: _log_rv(hours) for name, hours in RV_SUMMARY_HOURS.items()},
}


def _feature_exprs(names: tuple[str, ...]) -> list[pl.Expr]:
    return [DERIVED_FEATURES[n].alias(n) if n in DERIVED_FEATURES else pl.col(n) for n in names]


@dataclass(frozen=True)
class WindowSpec:
    window: int = 48
    vol_horizon: int = 24
    direction_threshold: float = 0.005
    train_frac: float = 0.70
    val_frac: float = 0.15
    features: tuple[str, ...] = tuple(REFERENCE_FEATURES)

    @property
    def embargo(self) -> int:
        return self.window + self.vol_horizon


@dataclass
class Scaler:
    """Per-feature mean/std fitted on training rows, plus the target scale."""

    mean: list[float]
    std: list[float]
    target_scale: float

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)).astype(
            np.float32
        )

    def to_dict(self) -> dict:
        return {
            "mean": list(map(float, self.mean)),
            "std": list(map(float, self.std)),
            "target_scale": float(self.target_scale),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        return cls(list(d["mean"]), list(d["std"]), float(d["target_scale"]))


@dataclass
class Split:
    """Scaled arrays for one split. `x`: (N, W, F); targets (N,); `end_ts`: hour t of each window."""

    x: np.ndarray
    ret: np.ndarray
    vol: np.ndarray
    direction: np.ndarray
    end_ts: np.ndarray
    raw_ret: np.ndarray  # unscaled log return of hour t+1

    def __len__(self) -> int:
        return len(self.ret)


@dataclass
class WindowData:
    spec: WindowSpec
    scaler: Scaler
    train: Split
    val: Split
    test: Split
    data_version: str

    def summary(self) -> dict:
        return {
            "train_windows": len(self.train),
            "val_windows": len(self.val),
            "test_windows": len(self.test),
            "window": self.spec.window,
            "features": ", ".join(self.spec.features),
            "embargo_hours": self.spec.embargo,
        }

    def spec_dict(self) -> dict:
        d = asdict(self.spec)
        d["features"] = list(d["features"])
        return d


def direction_classes(ret: np.ndarray, threshold: float) -> np.ndarray:
    out = np.full(ret.shape, STABLE, dtype=np.int64)
    out[ret < -threshold] = DOWN
    out[ret > threshold] = UP
    return out


def _window_ends(ts_hours: np.ndarray, segment: np.ndarray, window: int, horizon: int) -> np.ndarray:
    """Row indices t whose window and target horizon are consecutive hours of one segment."""
    n = len(ts_hours)
    if n < window + horizon:
        return np.empty(0, dtype=np.int64)
    t = np.arange(window - 1, n - horizon)
    start, stop = t - (window - 1), t + horizon
    ok = (ts_hours[stop] - ts_hours[start] == window - 1 + horizon) & (segment[start] == segment[stop])
    return t[ok]


def build_windows(features: pl.DataFrame, spec: WindowSpec = WindowSpec(), data_version: str = "") -> WindowData:
    """Windows, targets and chronological splits for one symbol's feature rows."""
    frame, values, ret_all, ends, _ = _prepare(features, spec)
    if len(ends) < 50:
        raise ValueError(
            f"only {len(ends)} complete {spec.window}-hour windows in {frame.height} feature rows; ingest more history"
        )

    n = len(ends)
    t_train_end = ends[int(n * spec.train_frac) - 1]
    t_val_end = ends[int(n * (spec.train_frac + spec.val_frac)) - 1]
    in_train = ends <= t_train_end
    in_val = (ends > t_train_end + spec.embargo) & (ends <= t_val_end)
    in_test = ends > t_val_end + spec.embargo
    if not in_val.any():  # training needs validation windows (an empty test split is the caller's business)
        raise ValueError(
            f"no validation windows: {n} complete windows in {frame.height} feature rows leave "
            f"nothing after the {spec.embargo}-hour embargo between splits; land more candles "
            "(or shorten the window or the embargo)"
        )
    return _assemble(frame, values, ret_all, ends, in_train, in_val, in_test, spec, data_version)


def _prepare(features: pl.DataFrame, spec: WindowSpec):
    if features["symbol"].n_unique() > 1:
        raise ValueError("windows are built from one symbol's features at a time")
    frame = features.sort("ts")
    missing = [c for c in spec.features if c not in frame.columns and c not in DERIVED_FEATURES]
    if missing:
        raise ValueError(f"features table lacks {missing}")
    values = frame.select(_feature_exprs(spec.features)).to_numpy().astype(np.float32)
    ret_all = frame["log_return"].to_numpy().astype(np.float64)
    ts_hours = (frame["ts"].dt.epoch("s").to_numpy() // 3600).astype(np.int64)
    ends = _window_ends(ts_hours, frame["segment"].to_numpy(), spec.window, spec.vol_horizon)
    return frame, values, ret_all, ends, ts_hours


def build_fold(
    features: pl.DataFrame,
    spec: WindowSpec,
    test_start_hour: int,
    test_hours: int,
    val_hours: int,
    max_train_hours: int | None = None,
    data_version: str = "",
    min_test_windows: int = 10,
) -> WindowData:
    """One rolling-origin fold: test on [test_start, test_start + test_hours), validate on the
    `val_hours` before it, train on what precedes that (at most `max_train_hours`), with the
    embargo between each. Hours are Unix hours (seconds // 3600) of the window end. A forecast
    period that has just begun passes `min_test_windows=0` (its test split grows as hours arrive)."""
    frame, values, ret_all, ends, ts_hours = _prepare(features, spec)
    end_hours = ts_hours[ends]
    test_lo, test_hi = test_start_hour, test_start_hour + test_hours
    val_hi = test_lo - spec.embargo
    val_lo = val_hi - val_hours
    train_hi = val_lo - spec.embargo
    train_lo = train_hi - max_train_hours if max_train_hours else -np.inf
    in_test = (end_hours >= test_lo) & (end_hours < test_hi)
    in_val = (end_hours >= val_lo) & (end_hours < val_hi)
    in_train = (end_hours >= train_lo) & (end_hours < train_hi)
    if in_train.sum() < 50 or in_val.sum() < 10 or in_test.sum() < min_test_windows:
        raise ValueError(
            f"fold too small: {in_train.sum()} training, {in_val.sum()} validation and {in_test.sum()} test windows "
            f"(need 50, 10 and {min_test_windows}): land more history before the test period"
        )
    return _assemble(frame, values, ret_all, ends, in_train, in_val, in_test, spec, data_version)


def _assemble(frame, values, ret_all, ends, in_train, in_val, in_test, spec, data_version) -> WindowData:
    """Fit the scaler on the training rows only and cut the three splits."""
    t_train_end = ends[in_train].max()
    t_train_start = ends[in_train].min() - (spec.window - 1)
    train_rows = np.zeros(len(frame), dtype=bool)
    train_rows[t_train_start : t_train_end + 1] = True
    mean = values[train_rows].mean(axis=0)
    std = values[train_rows].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    target_scale = float(np.std(ret_all[t_train_start + 1 : t_train_end + 2]))
    scaler = Scaler(mean.tolist(), std.tolist(), target_scale if target_scale > 0 else 1.0)
    scaled = scaler.transform(values)

    offsets = np.arange(-(spec.window - 1), 1)
    future = np.arange(1, spec.vol_horizon + 1)

    def make(mask: np.ndarray) -> Split:
        t = ends[mask]
        x = scaled[t[:, None] + offsets[None, :]]
        nxt = ret_all[t + 1]
        vol = np.sqrt(np.mean(ret_all[t[:, None] + future[None, :]] ** 2, axis=1))
        return Split(
            x=x.astype(np.float32),
            ret=(nxt / scaler.target_scale).astype(np.float32),
            vol=(vol / scaler.target_scale).astype(np.float32),
            direction=direction_classes(nxt, spec.direction_threshold),
            end_ts=frame["ts"].to_numpy()[t],
            raw_ret=nxt,
        )

    return WindowData(spec, scaler, make(in_train), make(in_val), make(in_test), data_version)


# What a checkpoint records about the hours its fitting saw; the promotion gate reads it back.
LAST_TARGET_KEY = "last_target_ts"


def unix_hour(ts) -> int:
    """Unix hour of a numpy datetime64 (UTC)."""
    return int(np.datetime64(ts, "h").astype(np.int64))


def iso_hour(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, tz=timezone.utc).isoformat()


def parse_iso_hour(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() // 3600)


def training_window(data: WindowData) -> dict:
    """What a checkpoint records about the hours its fitting saw (UTC, ISO 8601).

    `train_end_ts` / `val_end_ts`: the last window end of each split; the targets of a
    window ending at t reach t + `target_horizon_hours` (the next-hour return and the
    volatility of the following vol_horizon hours), so `last_target_ts`, the last
    hour any training or validation target used, is the later end plus that horizon.
    """
    horizon = max(1, int(data.spec.vol_horizon))
    train_end = unix_hour(data.train.end_ts.max())
    val_end = unix_hour(data.val.end_ts.max()) if len(data.val) else None
    return {
        "train_end_ts": iso_hour(train_end),
        "val_end_ts": iso_hour(val_end) if val_end is not None else None,
        "target_horizon_hours": horizon,
        LAST_TARGET_KEY: iso_hour(max(train_end, val_end if val_end is not None else train_end) + horizon),
    }
