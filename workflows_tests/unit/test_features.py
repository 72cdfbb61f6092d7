from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from workflows.data.features import FEATURE_COLUMNS, WARMUP_HOURS, compute_features
from workflows.data.schemas import FeaturesSchema, validate
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles


@pytest.fixture(scope="module")
def candles() -> pl.DataFrame:
    return generate_candles(SyntheticSpec(days=20, seed=11))


def test_schema_and_warmup(candles):
    features = compute_features(candles)
    assert validate(FeaturesSchema, features) is None
    assert features.height == candles.height - WARMUP_HOURS
    assert features["segment"].unique().to_list() == [0]


def test_no_look_ahead(candles):
    """Perturbing every candle after hour t leaves every feature at or before t unchanged."""
    base = compute_features(candles)
    rng = np.random.default_rng(0)
    for cut in (100, 250, 400):
        t = candles["ts"][cut]
        scale = pl.Series(rng.uniform(0.5, 2.0, candles.height))
        future = pl.col("ts") > t
        perturbed = candles.with_columns(
            *[pl.when(future).then(pl.col(c) * scale).otherwise(pl.col(c)) for c in ("open", "high", "low", "close")],
            volume=pl.when(future).then(pl.col("volume") * 3).otherwise(pl.col("volume")),
        )
        after = compute_features(perturbed)
        past_before = base.filter(pl.col("ts") <= t)
        past_after = after.filter(pl.col("ts") <= t)
        assert past_before.equals(past_after)
        assert not base.filter(pl.col("ts") > t).equals(after.filter(pl.col("ts") > t))


def test_gaps_split_segments_and_never_mix(candles):
    gap_at = 200
    holey = candles.filter(pl.int_range(pl.len()).is_between(gap_at, gap_at + 2).not_())
    features = compute_features(holey)
    assert features["segment"].unique().sort().to_list() == [0, 1]
    second = features.filter(pl.col("segment") == 1)
    # the new segment starts only after a full warm-up past the gap
    assert second["ts"].min() == candles["ts"][gap_at + 3 + WARMUP_HOURS]
    # inside each segment rows are consecutive hours
    for _, seg in features.group_by("segment"):
        assert (seg["ts"].diff().drop_nulls() == timedelta(hours=1)).all()
    # features before the gap are unaffected by it
    full = compute_features(candles).filter(pl.col("ts") < candles["ts"][gap_at])
    assert full.equals(features.filter(pl.col("ts") < candles["ts"][gap_at]))


def test_flat_hours_flagged(candles):
    flat_rows = pl.int_range(pl.len()).is_between(100, 104)
    flat = candles.with_columns(
        open=pl.when(flat_rows).then(pl.col("close").get(99)).otherwise(pl.col("open")),
        high=pl.when(flat_rows).then(pl.col("close").get(99)).otherwise(pl.col("high")),
        low=pl.when(flat_rows).then(pl.col("close").get(99)).otherwise(pl.col("low")),
        close=pl.when(flat_rows).then(pl.col("close").get(99)).otherwise(pl.col("close")),
        volume=pl.when(flat_rows).then(0.0).otherwise(pl.col("volume")),
    )
    features = compute_features(flat)
    flagged = features.filter(pl.col("is_flat") == 1.0)
    assert flagged.height == 5
    assert (flagged["log_return"].abs() < 1e-12).all() and (flagged["log_volume"] == 0).all()


def _ema(values, span):
    """EMA with alpha = 2 / (span + 1), seeded with the first value: y0 = x0, y_t = a x_t + (1 - a) y_{t-1}.

    This is the seed features.py uses (polars `adjust=False`, the pandas/TA-Lib-free convention); its
    `min_samples=span` only hides the first span-1 values, it does not change the recursion."""
    alpha = 2 / (span + 1)
    out, prev = [], None
    for v in values:
        prev = v if prev is None else alpha * v + (1 - alpha) * prev
        out.append(prev)
    return np.array(out)


def _textbook_macd(close):
    """MACD(12, 26, 9) of one run of consecutive closes, each line divided by the close.

    MACD = EMA12 - EMA26, defined from the 26th close on (index 25); signal = EMA9 of the MACD values,
    seeded with the first defined one and complete from the 9th (index 33); histogram = MACD - signal.
    Returns (macd, signal, hist), NaN where a line is not yet complete."""
    macd = _ema(close, 12) - _ema(close, 26)
    macd[:25] = np.nan
    signal = np.full_like(macd, np.nan)
    signal[25:] = _ema(macd[25:], 9)
    signal[: 25 + 9 - 1] = np.nan
    return macd / close, signal / close, (macd - signal) / close


def test_macd_signal_and_histogram_match_the_textbook_recursion(candles):
    """Every row's macd, macd_signal and macd_hist equal an independent EMA recursion, also after a gap
    (the recursion restarts in the new segment), and no row is emitted before all three are complete."""
    gap_at = 200
    holey = candles.filter(pl.int_range(pl.len()).is_between(gap_at, gap_at + 2).not_())
    features = compute_features(holey)
    for segment, part in ((0, holey[:gap_at]), (1, holey[gap_at:])):
        rows = features.filter(pl.col("segment") == segment)
        # each feature row's position in its run of candles, matched by timestamp
        index = part.select("ts").with_row_index("pos")
        position = rows.select("ts").join(index, on="ts", how="left", maintain_order="left")["pos"].to_numpy()
        assert rows.height > 100 and not np.isnan(position.astype(float)).any()
        macd, signal, hist = (line[position] for line in _textbook_macd(part["close"].to_numpy()))
        assert not np.isnan(hist).any()  # every row emitted is past the warm-up
        np.testing.assert_allclose(rows["macd"].to_numpy(), macd, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(rows["macd_signal"].to_numpy(), signal, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(rows["macd_hist"].to_numpy(), hist, rtol=1e-9, atol=1e-15)
        # the histogram is not trivially zero: the signal line really lags the MACD line
        assert np.abs(hist).max() > 0.1 * np.abs(macd).max()


def test_indicators_match_textbook_definitions(candles):
    features = compute_features(candles)
    close = candles["close"].to_numpy()
    i = candles.height - 1  # last hour
    row = features.tail(1).row(0, named=True)
    r = np.diff(np.log(close))
    # 24-hour volatility: sample std of the last 24 log returns
    assert row["volatility_24h"] == pytest.approx(np.std(r[-24:], ddof=1), rel=1e-9)
    # MACD(12, 26, 9) as a fraction of the close: macd, signal and histogram of the last hour
    macd, signal, hist = _textbook_macd(close)
    assert row["macd"] == pytest.approx(macd[-1], rel=1e-9)
    assert row["macd_signal"] == pytest.approx(signal[-1], rel=1e-9)
    assert row["macd_hist"] == pytest.approx(hist[-1], rel=1e-9)
    # Bollinger (20, 2): population std
    window = close[-20:]
    mid, sd = window.mean(), window.std()
    assert row["bb_pct_b"] == pytest.approx((close[i] - (mid - 2 * sd)) / (4 * sd), rel=1e-9)
    assert row["bb_bandwidth"] == pytest.approx(4 * sd / mid, rel=1e-9)
    # Wilder RSI(14) on log returns
    gains, losses = np.clip(r, 0, None), np.clip(-r, 0, None)
    avg_g, avg_l = gains[0], losses[0]
    for g, lo in zip(gains[1:], losses[1:]):
        avg_g += (g - avg_g) / 14
        avg_l += (lo - avg_l) / 14
    assert row["rsi_14"] == pytest.approx(100 - 100 / (1 + avg_g / avg_l), rel=1e-9)
    assert set(FEATURE_COLUMNS) <= set(features.columns)


def test_symbols_never_mix():
    a = generate_candles(SyntheticSpec(symbol="AAAUSDT", days=5, seed=1))
    b = generate_candles(SyntheticSpec(symbol="BBBUSDT", days=5, seed=2))
    both = compute_features(pl.concat([a, b]))
    alone = compute_features(a)
    assert both.filter(pl.col("symbol") == "AAAUSDT").equals(alone)
