from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.data.sources.candles import CANDLE_SCHEMA
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import (
    load_candles,
    load_rejected,
    record_rejections,
    slice_fingerprint,
    upsert_candles,
)


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def test_upsert_is_idempotent_and_counts(con):
    frame = generate_candles(SyntheticSpec(days=3))
    first = upsert_candles(con, frame, "a.csv")
    assert (first.inserted, first.updated, first.unchanged) == (72, 0, 0)
    stamp = con.execute("SELECT max(ingested_at) FROM candles").fetchone()[0]
    again = upsert_candles(con, frame, "a.csv")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 72)
    # nothing changed, not even the ingestion time
    assert con.execute("SELECT max(ingested_at) FROM candles").fetchone()[0] == stamp
    changed = frame.with_columns(
        close=pl.when(pl.int_range(pl.len()) < 2).then(pl.col("close") * 1.01).otherwise(pl.col("close"))
    )
    changed = changed.with_columns(high=pl.max_horizontal("high", "close"))
    third = upsert_candles(con, changed, "b.csv")
    assert (third.inserted, third.updated, third.unchanged) == (0, 2, 70)
    assert load_candles(con, "BTCUSDT").equals(changed)


def test_symbols_are_isolated(con):
    a = generate_candles(SyntheticSpec(symbol="AAAUSDT", days=2, seed=1))
    b = generate_candles(SyntheticSpec(symbol="BBBUSDT", days=2, seed=2))
    upsert_candles(con, a, "x")
    upsert_candles(con, b, "y")
    assert load_candles(con, "AAAUSDT").equals(a)
    fp = slice_fingerprint(con, "candles", "AAAUSDT", ["ts", "close"])
    upsert_candles(con, b.with_columns(close=pl.col("close") * 1.0001, high=pl.col("high") * 1.0001), "y")
    assert slice_fingerprint(con, "candles", "AAAUSDT", ["ts", "close"]) == fp


def test_rejections_are_replaced_per_file(con):
    rejected = pl.DataFrame(
        {"line": [3], "symbol": ["BTCUSDT"], "ts": [None], "reason": ["negative volume"], "raw": ["x"]},
        schema={
            "line": pl.Int64,
            "symbol": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            "reason": pl.String,
            "raw": pl.String,
        },
    )
    record_rejections(con, "f.csv", rejected)
    record_rejections(con, "f.csv", rejected)
    record_rejections(con, "g.csv", rejected)
    stored = load_rejected(con)
    assert stored.height == 2
    assert sorted(stored["file"].to_list()) == ["f.csv", "g.csv"]


hours = st.integers(min_value=0, max_value=24 * 365 * 30)
prices = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)


@st.composite
def candle_frames(draw):
    offsets = draw(st.lists(hours, min_size=1, max_size=40, unique=True))
    symbol = draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "X1Y2"]))
    rows = []
    base = datetime(2000, 1, 1, tzinfo=timezone.utc)
    for off in offsets:
        a, b = draw(prices), draw(prices)
        lo, hi = min(a, b), max(a, b)
        o = draw(st.floats(min_value=lo, max_value=hi))
        c = draw(st.floats(min_value=lo, max_value=hi))
        v = draw(st.floats(min_value=0, max_value=1e12, allow_nan=False))
        rows.append((symbol, base + timedelta(hours=off), o, hi, lo, c, v))
    return pl.DataFrame(rows, schema=CANDLE_SCHEMA, orient="row").sort("ts")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=candle_frames())
def test_valid_candles_survive_write_then_read_unchanged(frame):
    with duckdb.connect() as con:
        upsert_candles(con, frame, "prop")
        back = load_candles(con, frame["symbol"][0])
    assert back.equals(frame)


def test_a_transaction_commits_its_block_or_nothing(con):
    from workflows.data.warehouse import transaction

    con.execute("CREATE TEMP TABLE t (x INT)")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1)")

    def write_then(stop: BaseException) -> None:
        with transaction(con):
            con.execute("INSERT INTO t VALUES (2)")
            raise stop

    for stop in (ValueError("bad row"), KeyboardInterrupt()):
        with pytest.raises(type(stop)):
            write_then(stop)
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]  # the committed block only
    with transaction(con):  # no transaction is left open by the failed ones
        con.execute("INSERT INTO t VALUES (3)")
    assert con.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]


def test_ensure_creates_a_table_and_adds_the_columns_an_older_one_lacks(con):
    from workflows.data.tables import ADDED, TABLES, ensure

    con.execute("CREATE TABLE forecasts (symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL)")  # an older table
    con.execute("INSERT INTO forecasts VALUES ('BTCUSDT', '2026-01-01 00:00')")
    ensure(con, "forecasts", "candles")
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'forecasts'"
    columns = {r[0] for r in con.execute(query).fetchall()}
    assert set(ADDED["forecasts"]) <= columns and "return_pct" not in columns  # added in place, not recreated
    assert con.execute("SELECT count(*) FROM forecasts").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM candles").fetchall() == [(0,)]
    assert len(TABLES) == 15
    with pytest.raises(KeyError, match="no warehouse table `candle`"):
        ensure(con, "candle")
