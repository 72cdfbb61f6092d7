"""Seeded, BTC-like synthetic hourly candles with a planted dependency.

The offline default source. Returns follow an AR term at one lag on top of a
GARCH(1,1) process with Student-t shocks (heavy tails, volatility clustering) and
an intraday volatility cycle; volume follows its own intraday cycle and rises with
absolute returns; OHLC are consistent by construction and volume is positive.

The planted truth, which the attention analysis should find:

    r_t = strength * r_{t-lag} + e_t

so `strength` is the correlation of a return with the return `lag` hours earlier
(it explains about strength^2 of the variance); `strength=0` is pure noise with
no predictable mean. Everything built on this data is labelled synthetic.

The default lag is 17 h, deliberately not the 24 h period of the intraday
volatility cycle (nor 12 h or 48 h): the size of a return 24 h ago does tell
something about the size of the next one (same hour of day), so a model that
looks 24 h back may be tracking the daily cycle rather than the planted lag. A
peak at 17 h is not explained by the daily cycle. `lag=24` still works for callers
that want the confounded case.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from workflows.data.sources.candles import CANDLE_SCHEMA, ReadResult, from_candles

# A fixed default end makes the default data identical on every machine and day.
DEFAULT_END = datetime(2026, 1, 1, tzinfo=timezone.utc)
# The planted lag by default: inside the 48 h window, off the 24 h daily cycle.
DEFAULT_LAG = 17


@dataclass(frozen=True)
class SyntheticSpec:
    symbol: str = "BTCUSDT"
    days: int = 90
    seed: int = 7
    lag: int = DEFAULT_LAG
    strength: float = 0.25
    hourly_vol: float = 0.006  # typical recent BTC hourly return std
    start_price: float = 40_000.0
    tail_df: float = 5.0  # Student-t degrees of freedom of the shocks (lower = heavier tails)
    garch_alpha: float = 0.05
    garch_beta: float = 0.90
    end: datetime = DEFAULT_END  # exclusive: the last candle opens one hour earlier

    def __post_init__(self) -> None:
        if self.days <= 0:
            raise ValueError(f"days must be positive, got {self.days}")
        if self.lag < 1:
            raise ValueError(f"lag must be at least 1 hour, got {self.lag}")
        if self.tail_df <= 2:
            raise ValueError(f"tail_df must exceed 2 for a finite variance, got {self.tail_df}")
        if not (self.garch_alpha >= 0 and self.garch_beta >= 0 and self.garch_alpha + self.garch_beta < 1):
            raise ValueError("GARCH needs alpha, beta >= 0 and alpha + beta < 1")
        if not -0.95 < self.strength < 0.95:
            raise ValueError(f"strength must lie in (-0.95, 0.95) for a stationary series, got {self.strength}")


def generate_candles(spec: SyntheticSpec = SyntheticSpec()) -> pl.DataFrame:
    """Hourly candles ending at `spec.end` (exclusive), as a candle frame."""
    rng = np.random.default_rng(spec.seed)
    n = spec.days * 24
    burn = max(500, 10 * spec.lag)
    total = n + burn

    end = spec.end.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=n)
    hours = (np.arange(-burn, n) + start.hour) % 24

    # Intraday volatility cycle peaking around the US open (~15:00 UTC).
    season = 1.0 + 0.35 * np.cos(2 * np.pi * (hours - 15) / 24)
    season /= np.sqrt(np.mean(season**2))

    # GARCH(1,1) on unit-variance Student-t(4) shocks.
    nu = spec.tail_df
    shocks = rng.standard_t(nu, size=total) / np.sqrt(nu / (nu - 2))
    alpha, beta = spec.garch_alpha, spec.garch_beta
    # Innovation variance chosen so returns have std ~= hourly_vol after the AR term.
    target = spec.hourly_vol**2 * (1 - spec.strength**2)
    omega = target * (1 - alpha - beta)
    var = np.empty(total)
    eps = np.empty(total)
    returns = np.zeros(total)
    var[0] = target
    for t in range(total):
        if t > 0:
            var[t] = omega + alpha * eps[t - 1] ** 2 + beta * var[t - 1]
        eps[t] = np.sqrt(var[t]) * shocks[t]
        planted = spec.strength * returns[t - spec.lag] if t >= spec.lag else 0.0
        returns[t] = planted + eps[t] * season[t]

    returns = returns[burn:]
    season = season[burn:]
    sigma = np.sqrt(var[burn:]) * season

    close = spec.start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[spec.start_price], close[:-1]])
    wick_up = np.abs(rng.normal(0.0, 0.5, n)) * sigma
    wick_down = np.abs(rng.normal(0.0, 0.5, n)) * sigma
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)

    volume_season = 1.0 + 0.4 * np.cos(2 * np.pi * (hours[burn:] - 14) / 24)
    volume = 800.0 * volume_season * (1.0 + 4.0 * np.abs(returns) / spec.hourly_vol) * rng.lognormal(0.0, 0.35, n)

    ts = pl.datetime_range(start, end - timedelta(hours=1), interval="1h", eager=True, time_zone="UTC")
    return pl.DataFrame(
        {
            "symbol": [spec.symbol] * n,
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    ).cast(CANDLE_SCHEMA)


def synthetic_source(spec: SyntheticSpec = SyntheticSpec()) -> ReadResult:
    """The synthetic generator as a source: candles validated like any other input."""
    result = from_candles(
        f"synthetic:{spec.symbol}:seed={spec.seed}", generate_candles(spec), "synthetic", now=spec.end
    )
    result.notes.append(
        f"SYNTHETIC data: {spec.days} days, seed {spec.seed}, planted AR dependency "
        f"at lag {spec.lag} h with strength {spec.strength:g}"
    )
    return result
