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


# --- issue 21: every physical line on its own, any failure a reason, plausibility, streaming -----------------


def hourly_lines(n: int, start_hour: int = 0) -> list[str]:
    """`n` consecutive valid hourly rows from 2024-01-01 00:00 UTC on."""
    base = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
    return [f"{int(base) + 3600 * (start_hour + i)},100,101,99,100.5,10" for i in range(n)]


def test_an_unbalanced_quote_costs_its_own_line_only(tmp_path):
    rows = hourly_lines(1000)
    rows[2] = rows[2].replace(",100,", ',"100,', 1)  # line 4 of the file (header is line 1)
    path = tmp_path / "BTCUSDT-quote.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    result = read_candle_file(path, now=NOW)
    assert result.candles.height == 999 and result.rejected.height == 1  # the old reader landed 2, rejected 1
    bad = result.rejected.row(0, named=True)
    assert bad["line"] == 4 and "malformed quoting" in bad["reason"] and bad["raw"] == rows[2]


def test_a_well_formed_quoted_line_still_parses(tmp_path):
    path = tmp_path / "BTCUSDT-quoted.csv"
    path.write_text(HEADER + "\n" + '"2024-01-01T00:00:00Z","100","101","99","100.5","10"\n')
    assert read_candle_file(path, now=NOW).candles.height == 1


def test_an_oversized_field_is_one_rejected_row(tmp_path):
    rows = hourly_lines(5)
    rows[1] = rows[1] + "," + "9" * 200_000  # over csv's field limit and the line cap
    path = tmp_path / "BTCUSDT-huge-field.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    result = read_candle_file(path, now=NOW)
    assert result.candles.height == 4 and result.rejected.height == 1
    bad = result.rejected.row(0, named=True)
    assert bad["line"] == 3 and "line longer than 4,096 bytes" in bad["reason"] and len(bad["raw"]) < 200


def test_a_nested_parquet_file_is_a_source_error_naming_the_column(tmp_path):
    frame = pl.DataFrame(
        {"timestamp": [1704067200], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [[1.0, 2.0]]}
    )
    path = tmp_path / "BTCUSDT-nested.parquet"
    frame.write_parquet(path)
    with pytest.raises(CandleSourceError, match=r"nested columns: volume \(List"):
        read_candle_file(path, now=NOW)


def test_any_other_failure_while_reading_becomes_a_source_error(tmp_path, monkeypatch):
    from workflows.data.sources import files

    path = tmp_path / "BTCUSDT.csv"
    path.write_text(csv())

    def broken(*args, **kwargs):
        raise RuntimeError("something no one foresaw")

    monkeypatch.setattr(files, "parse_times", broken)
    with pytest.raises(CandleSourceError) as info:
        read_candle_file(path, now=NOW)
    assert info.value.rule == "unreadable file" and "RuntimeError: something no one foresaw" in str(info.value)
    assert str(info.value).startswith("BTCUSDT.csv")


def test_daily_candles_are_refused_whole_as_not_hourly(tmp_path):
    days = [f"2024-01-{d:02d},100,101,99,100.5,10" for d in range(1, 11)]
    path = tmp_path / "BTCUSDT-1d.csv"
    path.write_text("\n".join(["date,open,high,low,close,volume", *days]) + "\n")
    with pytest.raises(
        CandleSourceError, match="not hourly: BTCUSDT: the median spacing of its 10 candles is 24 hours"
    ):
        read_candle_file(path, now=NOW)
    # the negative case: hourly rows with a few missing hours are hourly
    gappy = [line for i, line in enumerate(hourly_lines(30)) if i % 7]
    path.write_text("\n".join([HEADER, *gappy]) + "\n")
    assert read_candle_file(path, now=NOW).candles.height == len(gappy)


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("0,100,101,99,100.5,10", "time before 2009-01-03"),
        ("-86400,100,101,99,100.5,10", "time before 2009-01-03"),
        ("1960-01-01T00:00:00Z,100,101,99,100.5,10", "time before 2009-01-03"),
        ("2024-01-02T00:00:00Z,1e300,1e300,1e300,1e300,10", "implausible price (above 1e+09)"),
    ],
)
def test_implausible_times_and_prices_are_rejected(tmp_path, line, rule):
    path = tmp_path / "BTCUSDT-absurd.csv"
    path.write_text(csv(line))
    result = read_candle_file(path, now=NOW)
    assert result.candles.height == 3 and result.rejected.height == 1
    assert rule in result.rejected["reason"][0]


def test_a_file_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "BTCUSDT.csv"
    path.write_text(csv())
    monkeypatch.setenv("WORKFLOWS_MAX_FILE_BYTES", "100")
    with pytest.raises(CandleSourceError, match=r"file too large: \d+ bytes, over the cap of 100"):
        read_candle_file(path, now=NOW)
    monkeypatch.setenv("WORKFLOWS_MAX_FILE_BYTES", "100000")
    assert read_candle_file(path, now=NOW).candles.height == 3


def test_a_file_that_grows_while_read_is_left_for_later(tmp_path, monkeypatch):
    from workflows.data.sources import files

    path = tmp_path / "BTCUSDT.csv"
    path.write_text(csv())
    real = files.check_rows

    def writer_appends(*args, **kwargs):
        with open(path, "a") as handle:
            handle.write("2024-01-01T03:00:00Z,102,103,101,102,10\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "check_rows", writer_appends)
    with pytest.raises(files.FileChangedError, match="still being written"):
        read_candle_file(path, now=NOW)


def test_reading_in_chunks_gives_the_same_result(tmp_path, monkeypatch):
    """Duplicates across chunk boundaries are still found, lines keep their numbers."""
    from workflows.data.sources import files

    rows = hourly_lines(20) + hourly_lines(3, start_hour=5) + ["garbage"]
    path = tmp_path / "BTCUSDT.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    whole = read_candle_file(path, now=NOW)
    monkeypatch.setattr(files, "CHUNK_LINES", 4)
    chunked = read_candle_file(path, now=NOW)
    assert whole.candles.equals(chunked.candles) and whole.rejected.equals(chunked.rejected)
    assert whole.candles.height == 20 and whole.rejected.height == 4
