"""Incremental features equal the full computation: random splits, random corrections,
random gaps and flat runs (hypothesis), in memory and through DuckDB."""

from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.data.feature_state import extend
from workflows.data.features import FEATURE_COLUMNS, WARMUP_HOURS, compute_features
from workflows.data.sources.candles import CANDLE_SCHEMA
from workflows.data.warehouse import (
    first_changed_hour,
    load_candles,
    load_table_slice,
    refresh_features,
    upsert_candles,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
RTOL = ATOL = 1e-9


def make_candles(seed: int, hours: int, gaps: list[int], flat: tuple[int, int] | None) -> pl.DataFrame:
    """`hours` hourly candles with the hours in `gaps` left out and a flat zero-volume run."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, hours))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, hours))
    volume = rng.uniform(1, 100, hours)
    if flat is not None:
        a, b = flat
        close[a:b] = open_[a:b] = high[a:b] = low[a:b] = close[a]
        volume[a:b] = 0.0
    frame = pl.DataFrame(
        {
            "symbol": ["BTCUSDT"] * hours,
            "ts": [T0 + timedelta(hours=i) for i in range(hours)],
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    return frame.filter(~pl.int_range(pl.len()).is_in(gaps)).cast(CANDLE_SCHEMA)


def assert_same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got["ts"].to_list() == want["ts"].to_list()
    assert got["segment"].to_list() == want["segment"].to_list()
    for column in ["close", *FEATURE_COLUMNS]:
        np.testing.assert_allclose(
            got[column].to_numpy(), want[column].to_numpy(), rtol=RTOL, atol=ATOL, err_msg=column
        )


@st.composite
def histories(draw):
    hours = draw(st.integers(40, 260))
    gaps = draw(st.lists(st.integers(1, hours - 2), max_size=4, unique=True))
    flat = None
    if draw(st.booleans()):
        a = draw(st.integers(0, hours - 2))
        flat = (a, min(hours, a + draw(st.integers(2, 40))))
    return make_candles(draw(st.integers(0, 2**16)), hours, gaps, flat)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles=histories(), data=st.data())
def test_batches_equal_full_computation(candles, data):
    """Extending batch by batch (any split, one hour or many) gives the full computation's rows."""
    cuts = sorted(data.draw(st.lists(st.integers(1, candles.height - 1), max_size=4, unique=True)))
    features, state = [], None
    for a, b in zip([0, *cuts], [*cuts, candles.height]):
        step = extend("BTCUSDT", candles.slice(a, b - a), state)
        features.append(step.features)
        state = step.state if state is None else pl.concat([state, step.state])
    assert_same(pl.concat(features), compute_features(candles))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles=histories(), data=st.data())
def test_correction_rebuilds_from_that_hour(candles, data):
    """A corrected, late (gap filled) or removed hour: rebuild from it on, keep every row before."""
    before = extend("BTCUSDT", candles)
    i = data.draw(st.integers(0, candles.height - 1))
    kind = data.draw(st.sampled_from(["correct", "late", "remove"]))
    if kind == "correct":
        factor = data.draw(st.floats(0.9, 1.1))
        changed = candles.with_columns(
            close=pl.when(pl.int_range(pl.len()) == i).then(pl.col("close") * factor).otherwise(pl.col("close")),
            high=pl.when(pl.int_range(pl.len()) == i)
            .then(pl.max_horizontal("high", pl.col("close") * factor))
            .otherwise(pl.col("high")),
            low=pl.when(pl.int_range(pl.len()) == i)
            .then(pl.min_horizontal("low", pl.col("close") * factor))
            .otherwise(pl.col("low")),
        )
        start = candles["ts"][i]
    elif kind == "late":
        # An hour that arrives late: one of the gaps, or the hour before the first / after the last.
        present = set(candles["ts"].to_list())
        span = int((candles["ts"][-1] - candles["ts"][0]).total_seconds() // 3600)
        missing = [candles["ts"][0] + timedelta(hours=h) for h in range(-1, span + 2)]
        start = data.draw(st.sampled_from([t for t in missing if t not in present]))
        late = candles.slice(i, 1).with_columns(ts=pl.lit(start).cast(pl.Datetime("us", "UTC")))
        changed = pl.concat([candles, late]).sort("ts")
    else:
        changed = candles.filter(pl.int_range(pl.len()) != i)
        start = candles["ts"][i]
    kept_state = before.state.filter(pl.col("ts") < start)
    kept_features = before.features.filter(pl.col("ts") < start)
    rebuilt = extend("BTCUSDT", changed.filter(pl.col("ts") >= start), kept_state)
    assert_same(pl.concat([kept_features, rebuilt.features]), compute_features(changed))


def test_a_bounded_tail_without_the_ema_state_is_not_exact():
    """Why the EMA state is carried: recomputing from a 100-hour tail of candles alone misses the
    test's tolerance (EMAs remember every hour), while extending from the stored state meets it."""
    candles = make_candles(3, 600, [], None)
    full = compute_features(candles)
    state = extend("BTCUSDT", candles.head(599)).state
    from_state = extend("BTCUSDT", candles.tail(1), state).features
    from_tail = compute_features(candles.tail(100)).tail(1)
    assert_same(from_state, full.tail(1))
    assert not np.isclose(from_tail["macd_signal"][0], full["macd_signal"][-1], rtol=RTOL, atol=0)
    # And a wrong state is caught: extending another history's state differs.
    other = extend("BTCUSDT", make_candles(4, 599, [], None)).state
    assert abs(extend("BTCUSDT", candles.tail(1), other).features["rsi_14"][0] - full["rsi_14"][-1]) > 1e-6


def test_warehouse_refresh_touches_only_the_changed_hours(tmp_path):
    """Through DuckDB: first build is full, a new hour extends, a correction rebuilds from it on,
    nothing changed means nothing written, and another symbol's rows are never touched."""
    candles = make_candles(5, 400, [150], (200, 230))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    other = make_candles(6, 100, [], None).with_columns(symbol=pl.lit("ETHUSDT"))
    upsert_candles(con, other, "test")
    refresh_features(con, "ETHUSDT")
    eth_before = load_table_slice(con, "features", "ETHUSDT")

    upsert_candles(con, candles.head(candles.height - 1), "test")
    first = refresh_features(con, "BTCUSDT")
    assert (first.mode, first.hours_recomputed) == ("full", candles.height - 1)
    upsert_candles(con, candles.tail(1), "test")
    new_hour = refresh_features(con, "BTCUSDT")
    assert (new_hour.mode, new_hour.rebuilt_from, new_hour.hours_recomputed) == ("incremental", candles["ts"][-1], 1)
    assert_same(load_table_slice(con, "features", "BTCUSDT"), compute_features(candles))

    corrected = candles.with_columns(
        volume=pl.when(pl.col("ts") == candles["ts"][300]).then(7.0).otherwise(pl.col("volume"))
    )
    upsert_candles(con, corrected.slice(300, 1), "test")
    # The hour recorded by the upsert is the one a comparison of every stored hour finds.
    assert first_changed_hour(con, "BTCUSDT") == candles["ts"][300]
    fix = refresh_features(con, "BTCUSDT")
    assert (fix.mode, fix.rebuilt_from, fix.hours_recomputed) == (
        "incremental",
        candles["ts"][300],
        candles.height - 300,
    )
    assert_same(load_table_slice(con, "features", "BTCUSDT"), compute_features(corrected))
    assert refresh_features(con, "BTCUSDT").mode == "unchanged"
    assert first_changed_hour(con, "BTCUSDT") is None
    # Candles written behind the upsert's back: the comparison still finds the changed hour.
    # `ts` is stored as naive UTC: bind it naive (an aware value would be cast through the session's time zone,
    # which DuckDB takes from TZ, and name another hour under TZ=Pacific/Kiritimati)
    hour = candles["ts"][350].astimezone(timezone.utc).replace(tzinfo=None)
    con.execute("UPDATE candles SET close = close * 1.01 WHERE symbol = 'BTCUSDT' AND ts = ?", [hour])
    assert refresh_features(con, "BTCUSDT").mode == "unchanged"
    behind = refresh_features(con, "BTCUSDT", compare=True)
    assert (behind.mode, behind.rebuilt_from) == ("incremental", candles["ts"][350])
    assert_same(load_table_slice(con, "features", "BTCUSDT"), compute_features(load_candles(con, "BTCUSDT")))
    assert load_table_slice(con, "features", "ETHUSDT").equals(eth_before)
    assert load_table_slice(con, "features", "BTCUSDT").height == compute_features(corrected).height
    assert compute_features(corrected).height < candles.height - WARMUP_HOURS  # the gap restarted the warm-up
