import math

import numpy as np
import polars as pl
import pytest

from workflows.data.schemas import CandlesSchema, validate
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles, synthetic_source


def returns(frame: pl.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def autocorr(x: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(x[lag:], x[:-lag])[0, 1])


def test_seeded_and_reproducible():
    a = generate_candles(SyntheticSpec(days=10, seed=3))
    b = generate_candles(SyntheticSpec(days=10, seed=3))
    c = generate_candles(SyntheticSpec(days=10, seed=4))
    assert a.equals(b)
    assert not a.equals(c)
    assert a.height == 240


def test_candles_are_valid_and_hourly():
    result = synthetic_source(SyntheticSpec(days=30))
    assert result.rejected.is_empty()
    assert validate(CandlesSchema, result.candles) is None
    steps = result.candles["ts"].diff().drop_nulls().unique().to_list()
    assert len(steps) == 1 and steps[0].total_seconds() == 3600
    assert (result.candles["volume"] > 0).all()
    assert any("SYNTHETIC" in note for note in result.notes)


def test_default_planted_lag_is_off_the_daily_cycle():
    spec = SyntheticSpec()
    assert (spec.lag, spec.strength) == (17, 0.25)
    # Shares no period with the 24 h volatility cycle, and fits inside the 48 h window.
    assert math.gcd(spec.lag, 24) == 1 and spec.lag < 48


@pytest.mark.parametrize(("lag", "strength"), [(17, 0.25), (24, 0.25), (6, 0.4)])
def test_planted_dependency_is_there(lag, strength):
    r = returns(generate_candles(SyntheticSpec(days=730, lag=lag, strength=strength, seed=1)))
    assert autocorr(r, lag) == pytest.approx(strength, abs=0.05)
    others = [abs(autocorr(r, k)) for k in range(1, 48) if k % lag]
    assert max(others) < 0.06


def test_strength_zero_is_noise_with_stylised_facts():
    r = returns(generate_candles(SyntheticSpec(days=730, strength=0.0, seed=2)))
    assert abs(autocorr(r, 17)) < 0.05 and abs(autocorr(r, 24)) < 0.05
    kurtosis = float(np.mean((r - r.mean()) ** 4) / r.var() ** 2)
    assert kurtosis > 5  # heavy tails
    assert autocorr(np.abs(r), 1) > 0.1  # volatility clustering
    assert 0.003 < r.std() < 0.012  # BTC-like hourly scale


def test_intraday_seasonality():
    frame = generate_candles(SyntheticSpec(days=365, seed=5)).with_columns(
        r=pl.col("close").log().diff().abs(), hour=pl.col("ts").dt.hour()
    )
    by_hour = frame.group_by("hour").agg(pl.col("r").mean(), pl.col("volume").mean()).sort("hour")
    r, volume = by_hour["r"].to_numpy(), by_hour["volume"].to_numpy()
    assert r.max() / r.min() > 1.3
    assert volume.max() / volume.min() > 1.3


def test_invalid_spec_is_refused():
    with pytest.raises(ValueError, match="strength"):
        SyntheticSpec(strength=1.2)
    with pytest.raises(ValueError, match="days"):
        SyntheticSpec(days=0)
