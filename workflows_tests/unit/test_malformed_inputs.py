"""Malformed candle files: each gets a clear message naming the file and the rule,
good rows are kept, and nothing is lost (every data line is kept or rejected)."""

import re
from datetime import datetime, timezone

import polars as pl
import pytest

from workflows.data.sources.candles import CandleSourceError
from workflows.data.sources.files import read_candle_file

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
HEADER = "timestamp,open,high,low,close,volume"
GOOD = [
    "2024-01-01T00:00:00Z,100,101,99,100.5,10",
    "2024-01-01T01:00:00Z,100.5,102,100,101,11",
    "2024-01-01T02:00:00Z,101,103,100.5,102,12",
]


def csv(*bad_lines: str, good=GOOD) -> str:
    return "\n".join([HEADER, *good, *bad_lines]) + "\n"


# (name, file content, rule expected in the rejection reason, line of the bad row)
ROW_CASES = [
    ("text_in_numeric", csv("2024-01-01T03:00:00Z,102,103,101,abc,10"), "non-numeric value in 'close'", 5),
    ("high_below_low", csv("2024-01-01T03:00:00Z,102,100,104,102,10"), "high below low", 5),
    ("zero_price", csv("2024-01-01T03:00:00Z,0,103,101,102,10"), "non-positive price", 5),
    ("negative_price", csv("2024-01-01T03:00:00Z,102,103,101,-102,10"), "non-positive price", 5),
    ("negative_volume", csv("2024-01-01T03:00:00Z,102,103,101,102,-1"), "negative volume", 5),
    ("off_the_hour", csv("2024-01-01T03:30:00Z,102,103,101,102,10"), "off-the-hour time", 5),
    ("far_future", csv("2999-01-01T00:00:00Z,102,103,101,102,10"), "future time", 5),
    ("nan_value", csv("2024-01-01T03:00:00Z,102,NaN,101,102,10"), "NaN or infinite value", 5),
    ("infinite_value", csv("2024-01-01T03:00:00Z,102,inf,101,102,10"), "NaN or infinite value", 5),
    ("truncated_last_line", csv("2024-01-01T03:00:00Z,102,10"), "expected 6 fields, found 3", 5),
    ("unparsable_time", csv("yesterday noon,102,103,101,102,10"), "unparsable time", 5),
    (
        "open_outside_range",
        csv("2024-01-01T03:00:00Z,110,103,101,102,10"),
        "open or close outside the high-low range",
        5,
    ),
    ("missing_value", csv("2024-01-01T03:00:00Z,102,103,,102,10"), "missing value", 5),
    ("implausible_range", csv("2024-01-01T03:00:00Z,16199,16199,4261,4308,10"), "implausible hourly range", 5),
    (
        "duplicate_conflicting",
        csv("2024-01-01T01:00:00Z,100.5,102,100,101.7,11"),
        "duplicate hour with conflicting values: line 5 was kept",
        3,
    ),
]


@pytest.mark.parametrize(("name", "text", "rule", "line"), ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_bad_rows_are_rejected_with_line_and_rule_and_good_rows_kept(tmp_path, name, text, rule, line):
    path = tmp_path / f"BTCUSDT-{name}.csv"
    path.write_text(text)
    result = read_candle_file(path, now=NOW)
    data_lines = len(text.strip().splitlines()) - 1
    # nothing lost: every data line is either a candle or a rejected row
    assert result.candles.height + result.rejected.height == data_lines
    assert result.rejected.height == 1
    rejected = result.rejected.row(0, named=True)
    assert rule in rejected["reason"], rejected
    assert rejected["line"] == line
    assert rejected["raw"]  # the original text is kept
    assert result.source == path.name
    # the good rows of the same file land
    assert result.candles.height == 3


# (name, bytes, rule expected in the error)
FILE_CASES = [
    ("empty.csv", b"", "empty file"),
    ("whitespace.csv", b"\n\n  \n", "empty file"),
    ("header_only.csv", (HEADER + "\n").encode(), "header only"),
    ("garbage.csv", bytes(range(256)) * 4, "binary content"),
    ("latin1.csv", (HEADER + "\n2024-01-01T00:00:00Z,1,1,1,1,caf\xe9\n").encode("latin-1"), "binary content"),
    ("wrong_columns.csv", b"name,age,city\nann,3,paris\n", "unrecognised columns"),
    ("no_volume.csv", b"timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,1,1,1\n", "unrecognised columns"),
    ("candles.csv", csv().encode(), "unknown symbol"),
    ("BTCUSDT.parquet", csv().encode(), "not a Parquet file"),
    ("BTCUSDT-corrupt.csv", b"PAR1" + b"\x00" * 64, "unreadable Parquet"),
]


@pytest.mark.parametrize(("name", "data", "rule"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unreadable_files_raise_a_clear_error(tmp_path, name, data, rule):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CandleSourceError) as info:
        read_candle_file(path, now=NOW)
    message = str(info.value)
    assert message.startswith(name), message  # names the file
    assert rule in message  # and the rule
    assert info.value.rule == rule
    assert path.read_bytes() == data  # the original is untouched


def test_unknown_symbol_error_says_how_to_name_the_file(tmp_path):
    path = tmp_path / "candles.csv"
    path.write_text(csv())
    with pytest.raises(CandleSourceError, match=re.escape("BTCUSDT-1h-2024-01.csv")):
        read_candle_file(path, now=NOW)


def test_csv_that_is_really_parquet_is_read_as_parquet(tmp_path):
    frame = pl.read_csv(csv().encode())
    path = tmp_path / "BTCUSDT-1h.csv"
    frame.write_parquet(path)
    result = read_candle_file(path, now=NOW)
    assert result.format == "ohlcv/parquet"
    assert result.candles.height == 3


def test_all_bad_rules_reported_together(tmp_path):
    path = tmp_path / "BTCUSDT.csv"
    path.write_text(csv("2024-01-01T03:30:00Z,0,103,101,102,-5"))
    reason = read_candle_file(path, now=NOW).rejected["reason"][0]
    for rule in ("non-positive price", "negative volume", "off-the-hour time"):
        assert rule in reason
