"""Incremental features: extend a segment from the state stored at its end.

`workflows.data.features.compute_features` is the reference: every indicator computed
from the start of its segment. This module computes the same rows from a
*state* instead, so a new hour costs one hour of work and a corrected hour
rebuilds only from that hour on.

What each indicator needs, stored per hour in the `feature_state` table:

- EMAs (MACD fast 12 and slow 26, its signal line 9) and Wilder averages (RSI's
  average gain and loss, an EMA with alpha 1/14) have infinite memory: no bounded
  tail of candles reproduces them exactly, so their values are carried as state
  (the raw recursion, before the warm-up mask).
- Rolling windows (24 h volatility of returns, 20 h Bollinger band of closes) need
  only the last 23 returns and 19 closes of the segment: read from the state rows
  of the tail, which also hold the candle values they were computed from.
- The position inside the segment decides every warm-up mask; the segment number
  continues across a gap.

Extending from the state at hour p gives the same numbers as the full
computation up to float rounding (the property test in
`workflows_tests/unit/test_feature_state.py` holds it to 1e-9 on random splits and
random corrections).
"""

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from workflows.data.features import (
    BB_K,
    BB_WINDOW,
    FEATURES_SCHEMA,
    MACD_FAST,
    MACD_SIGNAL,
    MACD_SLOW,
    RSI_PERIOD,
    VOL_WINDOW,
    WARMUP_HOURS,
)

HOUR_US = 3_600_000_000
# State rows of a segment's tail that the rolling windows need (24 returns incl. the new hour).
TAIL_ROWS = max(VOL_WINDOW, BB_WINDOW)
# Bump when the feature definitions change: stored state from another version is rebuilt.
STATE_VERSION = 1

STATE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "segment": pl.Int64(),
        "position": pl.Int64(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
        "log_return": pl.Float64(),
        "ema_fast": pl.Float64(),
        "ema_slow": pl.Float64(),
        "signal": pl.Float64(),
        "avg_gain": pl.Float64(),
        "avg_loss": pl.Float64(),
    }
)
NULLABLE_STATE = ("log_return", "signal", "avg_gain", "avg_loss")


@dataclass(frozen=True)
class Extension:
    """What one extension produced: feature rows and state rows from its first hour on."""

    features: pl.DataFrame
    state: pl.DataFrame


def _ema(values: np.ndarray, alpha: float, seed: float | None) -> np.ndarray:
    """y_t = (1 - alpha) y_{t-1} + alpha x_t; from `seed`, else starting at the first finite x."""
    out = np.full(values.shape, np.nan)
    if seed is None or not np.isfinite(seed):
        finite = np.flatnonzero(np.isfinite(values))
        if finite.size == 0:
            return out
        start, seed = int(finite[0]), float(values[finite[0]])
    else:
        start = 0
    if start < values.size:
        out[start:], _ = lfilter([alpha], [1.0, alpha - 1.0], values[start:], zi=[(1.0 - alpha) * seed])
    return out


def _flat_std(windows: np.ndarray, axis: int, ddof: int = 0) -> np.ndarray:
    """Standard deviation that is exactly 0 on a constant window, as polars' rolling std is
    (np.std of equal values can leave a rounding residue, and %B divides by it)."""
    std = np.std(windows, axis=axis, ddof=ddof)
    return np.where(np.ptp(windows, axis=axis) == 0, 0.0, std)


def _windowed(tail: np.ndarray, values: np.ndarray, window: int, fn) -> np.ndarray:
    """`fn` over each value's last `window` values (tail first); NaN where the window is short."""
    pad = np.full(max(0, window - 1 - tail.size), np.nan)
    series = np.concatenate([pad, tail[-(window - 1) :] if window > 1 else tail[:0], values])
    return fn(sliding_window_view(series, window), axis=1)


def _segment_tail(prior: pl.DataFrame | None) -> pl.DataFrame | None:
    """The prior state rows that share the last row's segment (at most TAIL_ROWS)."""
    if prior is None or prior.is_empty():
        return None
    prior = prior.sort("ts").tail(TAIL_ROWS)
    return prior.filter(pl.col("segment") == prior["segment"][-1])


def extend(symbol: str, candles: pl.DataFrame, prior: pl.DataFrame | None = None) -> Extension:
    """Features and state for `candles` (one symbol, the hours from some hour h on, in order),
    continuing from `prior`: the last state rows before h (None or empty: h is the first hour)."""
    tail = _segment_tail(prior)
    candles = candles.sort("ts")
    n = candles.height
    if n == 0:
        return Extension(pl.DataFrame(schema=FEATURES_SCHEMA), pl.DataFrame(schema=STATE_SCHEMA))
    ts = candles["ts"].dt.epoch("us").to_numpy()
    close = candles["close"].to_numpy().astype(float)
    steps = np.diff(ts)
    starts = [0, *(np.flatnonzero(steps != HOUR_US) + 1).tolist()]
    continues = tail is not None and int(ts[0]) - int(tail["ts"].dt.epoch("us")[-1]) == HOUR_US
    last = tail.row(-1, named=True) if tail is not None else None

    cols = {k: np.full(n, np.nan) for k in ("log_return", "ema_fast", "ema_slow", "signal", "avg_gain", "avg_loss")}
    cols.update({k: np.full(n, np.nan) for k in ("vol", "bb_mid", "bb_sd")})
    segment = np.zeros(n, dtype=np.int64)
    position = np.zeros(n, dtype=np.int64)
    next_segment = last["segment"] + 1 if last is not None else 0
    for i0, i1 in zip(starts, [*starts[1:], n]):
        run = slice(i0, i1)
        seeded = i0 == 0 and continues
        c = close[run]
        if seeded:
            assert tail is not None and last is not None  # `continues` holds only with a prior tail
            segment[run] = last["segment"]
            position[run] = last["position"] + 1 + np.arange(i1 - i0)
            prev = np.concatenate([[last["close"]], c[:-1]])
            tail_returns = tail["log_return"].drop_nulls().to_numpy()
            tail_closes = tail["close"].to_numpy()
            seeds = {k: last[k] for k in ("ema_fast", "ema_slow", "signal", "avg_gain", "avg_loss")}
        else:
            segment[run] = next_segment
            position[run] = np.arange(i1 - i0)
            prev = np.concatenate([[np.nan], c[:-1]])
            tail_returns = tail_closes = np.empty(0)
            seeds = dict.fromkeys(("ema_fast", "ema_slow", "signal", "avg_gain", "avg_loss"))
        next_segment = segment[i1 - 1] + 1
        pos = position[run]
        lr = np.log(c / prev)
        cols["log_return"][run] = lr
        cols["ema_fast"][run] = fast = _ema(c, 2 / (MACD_FAST + 1), seeds["ema_fast"])
        cols["ema_slow"][run] = slow = _ema(c, 2 / (MACD_SLOW + 1), seeds["ema_slow"])
        raw = np.where(pos >= MACD_SLOW - 1, fast - slow, np.nan)
        cols["signal"][run] = _ema(raw, 2 / (MACD_SIGNAL + 1), seeds["signal"])
        cols["avg_gain"][run] = _ema(np.clip(lr, 0.0, None), 1 / RSI_PERIOD, seeds["avg_gain"])
        cols["avg_loss"][run] = _ema(np.clip(-lr, 0.0, None), 1 / RSI_PERIOD, seeds["avg_loss"])
        cols["vol"][run] = _windowed(tail_returns, lr, VOL_WINDOW, lambda w, axis: _flat_std(w, axis, ddof=1))
        cols["bb_mid"][run] = _windowed(tail_closes, c, BB_WINDOW, np.mean)
        cols["bb_sd"][run] = _windowed(tail_closes, c, BB_WINDOW, _flat_std)

    state = pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": candles["ts"],
            "segment": segment,
            "position": position,
            **{k: candles[k].cast(pl.Float64) for k in ("open", "high", "low", "close", "volume")},
            **{k: cols[k] for k in ("log_return", "ema_fast", "ema_slow", "signal", "avg_gain", "avg_loss")},
        }
    ).with_columns(pl.col(*NULLABLE_STATE).fill_nan(None))
    return Extension(_features_from(state, cols), state.cast(STATE_SCHEMA))


def _features_from(state: pl.DataFrame, cols: dict[str, np.ndarray]) -> pl.DataFrame:
    raw = cols["ema_fast"] - cols["ema_slow"]
    gain, loss, sd, mid = cols["avg_gain"], cols["avg_loss"], cols["bb_sd"], cols["bb_mid"]
    close = state["close"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where((gain == 0) & (loss == 0), 50.0, np.where(loss == 0, 100.0, 100.0 - 100.0 / (1.0 + gain / loss)))
        pct_b = np.where(sd > 0, (close - (mid - BB_K * sd)) / (2 * BB_K * sd), 0.5)
        bandwidth = (2 * BB_K * sd) / mid
    two_pi = 2 * 3.141592653589793
    frame = state.select("symbol", "ts", "segment", "close", "log_return", "position", "open", "high", "low", "volume")
    frame = frame.with_columns(
        log_volume=pl.col("volume").log1p(),
        volatility_24h=cols["vol"],
        rsi_14=rsi,
        macd=raw / close,
        macd_signal=cols["signal"] / close,
        macd_hist=(raw - cols["signal"]) / close,
        bb_pct_b=pct_b,
        bb_bandwidth=bandwidth,
        hour_sin=(two_pi * pl.col("ts").dt.hour() / 24).sin(),
        hour_cos=(two_pi * pl.col("ts").dt.hour() / 24).cos(),
        dow_sin=(two_pi * (pl.col("ts").dt.weekday() - 1) / 7).sin(),
        dow_cos=(two_pi * (pl.col("ts").dt.weekday() - 1) / 7).cos(),
        is_flat=(
            (pl.col("volume") == 0) & (pl.col("high") == pl.col("low")) & (pl.col("open") == pl.col("close"))
        ).cast(pl.Float64),
    )
    return frame.filter(pl.col("position") >= WARMUP_HOURS).select(list(FEATURES_SCHEMA)).cast(FEATURES_SCHEMA)
