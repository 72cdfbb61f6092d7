"""Hostile candle files: each is refused whole with a reason that names the file, the rule and its threshold."""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from workflows.data.ingest import MAX_PRICE_JUMP, price_jump
from workflows.data.sources.candles import CandleSourceError
from workflows.data.sources.files import read_candle_file
from workflows.data.warehouse import upsert_candles

UTC = timezone.utc
NOW = datetime(2025, 1, 1, tzinfo=UTC)
START = datetime(2024, 3, 1, tzinfo=UTC)


def _binance_klines(path, n: int, minutes: int, price: float = 60_000.0):
    """A Binance kline dump as the exchange's spec writes it: open and close time in ms, no header."""
    lines = []
    for i in range(n):
        open_ms = int((START + timedelta(minutes=minutes * i)).timestamp() * 1000)
        close_ms = open_ms + minutes * 60_000 - 1
        p = price * (1 + 0.001 * (i % 5))
        lines.append(f"{open_ms},{p},{p * 1.002},{p * 0.998},{p * 1.001},12.5,{close_ms},750000,100,6,360000,0")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_30_minute_file_is_refused_whole_not_landed_as_its_on_the_hour_half(tmp_path):
    path = _binance_klines(tmp_path / "BTCUSDT-30m-2024-03.csv", 96, minutes=30)
    with pytest.raises(CandleSourceError) as caught:
        read_candle_file(path, now=NOW)
    message = str(caught.value)
    assert message.startswith("BTCUSDT-30m-2024-03.csv: sub-hourly candles: BTCUSDT: ")
    assert "median spacing of its 96 distinct times is 30 minutes" in message and "at least 1 hour" in message


def test_an_hourly_file_with_a_few_off_the_hour_rows_still_reads(tmp_path):
    """The negative case: one stray half-hour row is a rejected row, not a sub-hourly file."""
    path = _binance_klines(tmp_path / "BTCUSDT-1h-2024-03.csv", 48, minutes=60)
    stray = path.read_text().splitlines()[10].split(",")
    stray[0] = str(int(stray[0]) + 1_800_000)
    path.write_text(path.read_text() + ",".join(stray) + "\n")
    result = read_candle_file(path, now=NOW)
    assert result.candles.height == 48 and result.rejected["reason"].to_list() == ["off-the-hour time"]


@pytest.fixture
def stored(tmp_path_factory):
    """48 stored BTCUSDT hours around 60,000 (2024-03-01 and 02)."""
    con = duckdb.connect()
    path = _binance_klines(tmp_path_factory.mktemp("stored") / "BTCUSDT-1h-2024-03.csv", 48, minutes=60)
    upsert_candles(con, read_candle_file(path, now=NOW).candles, source=path.name)
    return con


def test_another_pairs_prices_under_this_name_are_refused_with_the_rule(stored, tmp_path):
    """ETHUSDT prices (about 3,000) in a file named BTCUSDT, for the 24 hours after the stored ones."""
    eth = _binance_klines(tmp_path / "BTCUSDT-1h-2024-03-03.csv", 72, minutes=60, price=3_000.0)
    later = "\n".join(eth.read_text().splitlines()[48:]) + "\n"
    eth.write_text(later)
    result = read_candle_file(eth, now=NOW)
    assert result.candles.height == 24  # every row passes the row rules on its own
    error = price_jump(stored, result)
    assert error is not None
    message = str(error)
    assert message.startswith("BTCUSDT-1h-2024-03-03.csv: implausible price jump: BTCUSDT 2024-03-03 00:00: ")
    assert f"by a factor of at most {MAX_PRICE_JUMP:g}" in message and "at most 24 hours away" in message
    assert "workflows remove-source" in message


def test_the_same_pairs_next_day_and_a_correction_pass(stored, tmp_path):
    """The negative cases: the next day of the same pair, and a 1% correction of stored hours."""
    nxt = _binance_klines(tmp_path / "BTCUSDT-1h-2024-03-03.csv", 72, minutes=60, price=61_000.0)
    nxt.write_text("\n".join(nxt.read_text().splitlines()[48:]) + "\n")
    assert price_jump(stored, read_candle_file(nxt, now=NOW)) is None
    corrected = _binance_klines(tmp_path / "BTCUSDT-1h-fix.csv", 48, minutes=60, price=60_600.0)
    assert price_jump(stored, read_candle_file(corrected, now=NOW)) is None


def test_a_stored_hour_overwritten_by_another_pair_is_refused(stored, tmp_path):
    wrong = _binance_klines(tmp_path / "BTCUSDT-1h-2024-03.csv", 48, minutes=60, price=3_000.0)
    error = price_jump(stored, read_candle_file(wrong, now=NOW))
    assert error is not None and "a factor of 20." in str(error) and "(48 such hour(s))" in str(error)
