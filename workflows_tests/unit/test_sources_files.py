from datetime import datetime, timezone

import polars as pl
import pytest

from workflows.data.sources.candles import normalize_symbol, symbol_from_filename
from workflows.data.sources.files import read_candle_file
from workflows_tests.helpers import BTC_FILE, ETH_FILE, needs_shared

UTC = timezone.utc
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


CDD_HEADER = "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount\n"


@needs_shared
def test_btc_export_one_row_per_distinct_hour():
    result = read_candle_file(BTC_FILE)
    raw = pl.read_csv(BTC_FILE, infer_schema=False)
    assert result.format == "cryptodatadownload/csv"
    # every data line is either a kept candle or a rejected row with a reason
    assert result.candles.height + result.rejected.height == raw.height
    assert result.candles.height == 33_412  # 33,413 distinct hours minus the implausible first candle
    assert result.candles["ts"].is_unique().all()
    assert result.candles["symbol"].unique().to_list() == ["BTCUSDT"]
    assert result.rejected["reason"].is_not_null().all()
    reasons = result.rejected["reason"].to_list()
    assert sum(r.startswith("duplicate hour") for r in reasons) == 2_649
    assert sum(r.startswith("implausible hourly range") for r in reasons) == 1
    # the millisecond row (the exchange's own record) wins a duplicated hour
    hour = result.candles.filter(pl.col("ts") == datetime(2020, 8, 1, 23, tzinfo=UTC))
    assert hour["open"].to_list() == [11783.31]
    assert result.candles["ts"].min() == datetime(2017, 8, 17, 5, tzinfo=UTC)
    assert result.candles["ts"].max() == datetime(2021, 6, 10, 0, tzinfo=UTC)


@needs_shared
def test_eth_export_reads_with_its_own_volume_column():
    result = read_candle_file(ETH_FILE)
    assert result.candles["symbol"].unique().to_list() == ["ETHUSDT"]
    first_line = ETH_FILE.read_text().splitlines()[1].split(",")
    newest = result.candles.sort("ts").tail(1)
    assert newest["volume"][0] == pytest.approx(float(first_line[7]))  # Volume ETH, not Volume USDT
    assert result.candles.height > 33_000


def test_cdd_with_url_line_ascending_and_mixed_units(tmp_path):
    text = (
        "https://www.CryptoDataDownload.com\n"
        + CDD_HEADER
        + "1502946000.0,2017-08-17 05-AM,BTC/USDT,100,110,90,105,1.5,150,NULL\n"
        + "1502949600000,2017-08-17 06:00:00,BTC/USDT,105,115,100,110,2.5,250,42\n"
    )
    result = read_candle_file(write(tmp_path, "Binance_BTCUSDT_1h.csv", text), now=NOW)
    assert result.rejected.is_empty()
    assert result.candles["ts"].to_list() == [
        datetime(2017, 8, 17, 5, tzinfo=UTC),
        datetime(2017, 8, 17, 6, tzinfo=UTC),
    ]
    assert result.candles["volume"].to_list() == [1.5, 2.5]


@pytest.mark.parametrize("with_header", [True, False])
@pytest.mark.parametrize("unit", [1_000, 1_000_000])
def test_binance_kline_dump(tmp_path, with_header, unit):
    start_s = 1_704_067_200  # 2024-01-01 00:00 UTC
    lines = []
    if with_header:
        lines.append(
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore"
        )
    for h in range(3):
        t = (start_s + 3600 * h) * unit
        lines.append(f"{t},42000.0,42100.0,41900.0,42050.0,12.5,{t + 3600 * unit - 1},525000.0,1000,6.0,250000.0,0")
    result = read_candle_file(write(tmp_path, "BTCUSDT-1h-2024-01.csv", "\n".join(lines) + "\n"), now=NOW)
    assert result.format == "binance-klines/csv"
    assert result.candles.height == 3
    assert result.candles["symbol"][0] == "BTCUSDT"
    assert result.candles["ts"][0] == datetime(2024, 1, 1, tzinfo=UTC)


def test_generic_iso_with_offsets_and_naive_times(tmp_path):
    text = (
        "timestamp,open,high,low,close,volume\n"
        "2024-03-01T02:00:00+02:00,10,11,9,10.5,100\n"  # 00:00 UTC
        "2024-03-01T01:00:00Z,10.5,11,10,10.8,90\n"
        "2024-03-01 02:00:00,10.8,11.2,10.6,11,80\n"  # no offset: taken as UTC
    )
    result = read_candle_file(write(tmp_path, "ethusdt_hourly.csv", text), now=NOW)
    assert result.candles["symbol"].unique().to_list() == ["ETHUSDT"]
    assert result.candles["ts"].to_list() == [datetime(2024, 3, 1, h, tzinfo=UTC) for h in range(3)]
    assert any("1 timestamps had no UTC offset" in n for n in result.notes)


def test_generic_with_symbol_column_and_unix_seconds(tmp_path):
    text = (
        "Time,Symbol,Open,High,Low,Close,Volume\n1704067200,btc-usdt,1,2,0.9,1.5,3\n1704067200,ETH/USDT,1,2,0.9,1.5,3\n"
    )
    result = read_candle_file(write(tmp_path, "mixed.csv", text), now=NOW)
    assert result.symbols == ["BTCUSDT", "ETHUSDT"]
    assert result.for_symbol("ETHUSDT").candles.height == 1


def test_parquet_file(tmp_path):
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(4)],
            "open": [1.0, 2.0, 3.0, 4.0],
            "high": [2.0, 3.0, 4.0, 5.0],
            "low": [0.9, 1.5, 2.5, 3.5],
            "close": [2.0, 3.0, 4.0, 4.5],
            "volume": [1.0, 1.0, 1.0, 1.0],
        }
    )
    path = tmp_path / "SOLUSDT.parquet"
    frame.write_parquet(path)
    result = read_candle_file(path, now=NOW)
    assert result.format == "ohlcv/parquet"
    assert result.candles["ts"].to_list() == frame["ts"].to_list()
    assert result.candles["symbol"][0] == "SOLUSDT"


def test_symbols_are_normalised():
    assert normalize_symbol("BTC/USDT") == normalize_symbol("btcusdt") == normalize_symbol("BTC-USDT") == "BTCUSDT"
    assert symbol_from_filename("BTCUSDT-1h-2024-01.csv") == "BTCUSDT"
    assert symbol_from_filename("Binance_ETHUSDT_1h.csv") == "ETHUSDT"
    assert symbol_from_filename("ETHBTC-1h-2024-01.zip") == "ETHBTC"
    assert symbol_from_filename("candles.csv") is None
    assert symbol_from_filename("2024-01-01.csv") is None
