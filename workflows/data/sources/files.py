"""Read candle files: CryptoDataDownload exports, Binance kline dumps, generic OHLCV.

CSV and Parquet, format detected from the content (Parquet by its `PAR1` magic
bytes, whatever the extension). Whole-file problems raise `CandleSourceError`
naming the file, the rule and what was expected; row problems become rejected
rows with their line number and reason, and the good rows of the same file are
kept (see `workflows.data.sources.candles.split_valid_rows`).

Formats
-------
* **CryptoDataDownload** (`unix,date,symbol,open,high,low,close,Volume <BASE>,
  Volume <QUOTE>[,tradecount]`), with or without the site's URL line before the
  header, in either time order. Its `unix` column mixes Unix seconds (written as
  floats) and milliseconds; each value's unit is read from its magnitude. Where
  an hour appears twice, the millisecond row (the exchange's own record) wins.
* **Binance kline dumps** (`open_time,open,high,low,close,volume,close_time,
  quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore`), with or
  without that header; open times in milliseconds, or microseconds as in newer
  spot dumps.
* **Generic OHLCV**: a time column (`timestamp`, `time`, `ts`, `date`,
  `datetime`, `open_time`, ...) holding Unix time in any unit or ISO 8601 text,
  and `open, high, low, close, volume` (any case); optional `symbol`. ISO times
  with an offset are converted to UTC; times without one are taken as UTC and the
  result's notes say how many.

Where a file has no symbol column, the symbol comes from its name
(`BTCUSDT-1h-2024-01.csv`, `Binance_BTCUSDT_1h.csv`).
"""

import csv
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from workflows import settings
from workflows.data.sources.candles import (
    VALUE_COLUMNS,
    CandleSourceError,
    ReadResult,
    check_rows,
    normalize_symbol_expr,
    raw_frame,
    resolve_duplicates,
    symbol_from_filename,
)
from workflows.settings import MAX_FILE_BYTES_ENV

PARQUET_MAGIC = b"PAR1"
# Limits: a file over the size cap is refused whole (quarantined with its size); a line over the line
# cap is one rejected row (a candle line is under 200 bytes). Rows are parsed CHUNK_LINES at a time.
MAX_FILE_BYTES = 1 << 30
MAX_LINE_BYTES = 4096
CHUNK_LINES = 20_000
MIN_STEPS_FOR_SPACING = 3  # fewer candles than 4 in a file: too few to judge its spacing
TIME_COLUMNS = ("timestamp", "open_time", "opentime", "time", "ts", "datetime", "date", "unix", "time_utc", "date_utc")
BINANCE_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
EXPECTED_FORMATS = (
    "a CryptoDataDownload export (unix,date,symbol,open,high,low,close,Volume <base>,...), "
    "a Binance kline dump (open_time,open,high,low,close,volume,close_time,...) or "
    "an OHLCV table with a time column (timestamp/time/date) and open,high,low,close,volume"
)
NAME_HINT = "add a 'symbol' column or name the file after its pair, e.g. BTCUSDT-1h-2024-01.csv"

# Unix time unit from magnitude: seconds until ~5138 AD, then ms, us, ns.
_SECONDS_MAX = 1e11
_MILLIS_MAX = 1e14
_MICROS_MAX = 1e17


class FileChangedError(CandleSourceError):
    """The file changed while it was read (a writer is still at it): leave it for later, do not quarantine it."""


def max_file_bytes() -> int:
    """The size cap on one input file: `$WORKFLOWS_MAX_FILE_BYTES`, else `MAX_FILE_BYTES`."""
    return settings.max_file_bytes(MAX_FILE_BYTES)


def read_candle_file(path: str | Path, *, now: datetime | None = None) -> ReadResult:
    """Read one candle file into valid candles and rejected rows.

    Whatever goes wrong while reading the file as a whole raises `CandleSourceError`
    (the caller quarantines the file with that reason), never another exception; a file
    whose size or modification time changed while it was read raises `FileChangedError`
    (still being written: leave it where it is). The file is read in chunks of
    `CHUNK_LINES` rows, so memory beyond the valid candles themselves does not grow with it.
    """
    path = Path(path)
    try:
        return _read_candle_file(path, now)
    except CandleSourceError:
        raise
    except Exception as exc:  # any other failure is about this file: say so, keep the others going
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise CandleSourceError(
            path.name,
            "unreadable file",
            f"{type(exc).__name__}: {detail}",
            "the file is kept with this reason; fix or re-export it, then copy it into incoming/ again",
        ) from exc


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise CandleSourceError(path.name, "file not found", str(path)) from None
    except OSError as exc:
        raise CandleSourceError(path.name, "file not readable", str(exc)) from None


def _read_candle_file(path: Path, now: datetime | None) -> ReadResult:
    name = path.name
    before = _stat(path)
    cap = max_file_bytes()
    if before.st_size > cap:
        raise CandleSourceError(
            name,
            "file too large",
            f"{before.st_size:,} bytes, over the cap of {cap:,}",
            f"split it into smaller files, or raise ${MAX_FILE_BYTES_ENV}",
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise CandleSourceError(name, "file not readable", str(exc)) from None
    if not head.strip():
        raise CandleSourceError(name, "empty file", "the file holds no data", EXPECTED_FORMATS)

    if head[:4] == PARQUET_MAGIC:
        header, chunks = _parquet_chunks(path, name)
        container = "parquet"
    else:
        if path.suffix.lower() == ".parquet":
            raise CandleSourceError(name, "not a Parquet file", "the file lacks the PAR1 magic bytes")
        if b"\x00" in head:
            raise CandleSourceError(name, "binary content", "NUL bytes found; not a CSV text file", EXPECTED_FORMATS)
        header, chunks = _csv_chunks(path, name)
        container = "csv"

    first = next(chunks)
    plan = _plan(header, first, path)
    goods, bads, naive = [], [], 0
    for rows in itertools.chain([first], chunks):
        raw, naive_rows = _build(plan, rows, path)
        good, bad = check_rows(raw, now=now)
        goods.append(good.drop("problem", "raw"))  # the text of the few duplicates is read again below
        bads.append(bad)
        naive += naive_rows
    valid, duplicates = resolve_duplicates(pl.concat(goods, how="vertical", rechunk=False))
    if duplicates.height:
        duplicates = _with_text(duplicates, path, name, container)
    rejected = pl.concat([*bads, duplicates], how="vertical").sort("line")

    after = _stat(path)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChangedError(
            name,
            "still being written",
            f"its size or modification time changed while it was read ({before.st_size:,} -> {after.st_size:,} bytes)",
            "write files as NAME.part and rename them when complete; it is read again once it stops changing",
        )
    _check_hourly(valid, rejected, name)
    notes = [f"{naive} timestamps had no UTC offset and were taken as UTC"] if naive else []
    return ReadResult(
        source=name,
        candles=valid,
        rejected=rejected,
        format=f"{plan.fmt}/{container}",
        notes=notes,
        file_version=file_version(after),
    )


def file_version(stat: os.stat_result) -> str:
    """A file's version as the readers and the sensor compare it: size and modification time."""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _with_text(rejected: pl.DataFrame, path: Path, name: str, container: str) -> pl.DataFrame:
    """Fill in the line text of rejected rows (duplicates) from a second pass over the file."""
    wanted = set(rejected["line"].to_list())
    _, chunks = _parquet_chunks(path, name) if container == "parquet" else _csv_chunks(path, name)
    text = {number: raw for rows in chunks for number, _, raw, _ in rows if number in wanted}
    return rejected.with_columns(raw=pl.col("line").replace_strict(text, default=None, return_dtype=pl.String))


def _check_hourly(valid: pl.DataFrame, rejected: pl.DataFrame, name: str) -> None:
    """File-level plausibility: the file's candles are hourly. The spacing is the median step between the
    distinct times of every row with a time, rejected ones included: a 30-minute export is refused whole
    rather than landing its on-the-hour half as hourly candles (its other half rejected as off the hour),
    and a daily or 4-hour export is refused rather than landed as hours with gaps."""
    times = pl.concat(
        [valid.select("symbol", "ts"), rejected.select("symbol", "ts").drop_nulls()], how="vertical"
    ).unique()
    for (symbol,), part in times.group_by("symbol"):
        steps = part["ts"].sort().diff().dt.total_seconds().drop_nulls() / 3600
        if len(steps) < MIN_STEPS_FOR_SPACING:
            continue
        median = float(steps.median())  # type: ignore[arg-type]
        if median < 1:
            raise CandleSourceError(
                name,
                "sub-hourly candles",
                f"{symbol}: the median spacing of its {len(steps) + 1} distinct times is {median * 60:g} minutes, "
                "under the hour this pipeline lands (the rule: median spacing of a file's times at least 1 hour)",
                "export the hourly series (1h klines); sub-hourly candles are not resampled to hours here",
            )
        if median > 1:
            raise CandleSourceError(
                name,
                "not hourly",
                f"{symbol}: the median spacing of its {len(steps) + 1} candles is {median:g} hours",
                "this pipeline lands hourly candles (1h klines); export the hourly series",
            )


# --------------------------------------------------------------------------- input

Row = tuple[int, list[str], str, str | None]  # (line number, fields, line text, parse problem or None)


def _split_line(text: str) -> tuple[list[str], str | None]:
    """One physical line's fields; a quoting problem makes it a bad row, never joins it with the next line."""
    if '"' not in text:
        return [f.strip() for f in text.split(",")], None
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return [f.strip() for f in text.split(",")], f"malformed quoting ({exc}): the line is read on its own"
    return [f.strip() for f in fields], None


def _csv_chunks(path: Path, name: str) -> tuple[list[str] | None, Iterator[list[Row]]]:
    """(header or None, chunks of rows) of a CSV text file, reading one physical line at a time."""
    lines = _csv_lines(path, name)
    # CryptoDataDownload prefixes some exports with one line holding its URL; then the header.
    first = next(lines, None)
    if first is not None and len(first[1]) <= 2 and ("http" in first[2].lower() or "www." in first[2].lower()):
        first = next(lines, None)
    if first is None:
        raise CandleSourceError(name, "empty file", "no rows found", EXPECTED_FORMATS)
    header = None
    if first[3] is None and _looks_like_header(first[1]):
        header = first[1]
        body = lines
    else:
        body = itertools.chain([first], lines)
    chunks = _chunked(body)
    peek = next(chunks, None)
    if peek is None:
        raise CandleSourceError(name, "header only", f"header {','.join(header or [])!r} but no data rows")
    return header, itertools.chain([peek], chunks)


def _csv_lines(path: Path, name: str) -> Iterator[Row]:
    with open(path, "rb") as handle:
        for number, data in enumerate(handle, start=1):
            if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            if len(data) > MAX_LINE_BYTES:
                preview = data[:120].decode("utf-8", "replace")
                yield number, [], preview + "...", f"line longer than {MAX_LINE_BYTES:,} bytes ({len(data):,})"
                continue
            if b"\x00" in data:
                raise CandleSourceError(name, "binary content", f"NUL bytes on line {number}", EXPECTED_FORMATS)
            try:
                text = data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise CandleSourceError(
                    name, "binary content", f"not UTF-8 text on line {number} (byte {exc.start})", EXPECTED_FORMATS
                ) from None
            if not text.strip() or not text.replace(",", "").strip():
                continue
            fields, problem = _split_line(text)
            yield number, fields, text, problem


def _chunked(rows: Iterator[Row]) -> Iterator[list[Row]]:
    while chunk := list(itertools.islice(rows, CHUNK_LINES)):
        yield chunk


def _looks_like_header(fields: list[str]) -> bool:
    return any(_is_word(f) for f in fields)


def _is_word(value: str) -> bool:
    value = value.strip()
    if not value:
        return False
    try:
        float(value)
        return False
    except ValueError:
        return value[0].isalpha() or value[0] == "_"


def _parquet_chunks(path: Path, name: str) -> tuple[list[str], Iterator[list[Row]]]:
    """(columns, chunks of rows as text) of a Parquet file, `CHUNK_LINES` rows at a time."""
    try:
        schema = pl.read_parquet_schema(path)
        rows_total = pl.scan_parquet(path).select(pl.len()).collect().item()
    except Exception as exc:  # a corrupt Parquet file: report what the reader said
        raise CandleSourceError(name, "unreadable Parquet", (str(exc).splitlines() or [""])[0]) from None
    nested = [f"{c} ({t})" for c, t in schema.items() if t.is_nested()]
    if nested:
        raise CandleSourceError(
            name, "nested columns", f"{', '.join(nested)}: candle columns are flat numbers, times and text"
        )
    if rows_total == 0:
        raise CandleSourceError(name, "header only", "the Parquet file has columns but no rows")
    header = list(schema)

    def chunks() -> Iterator[list[Row]]:
        for offset in range(0, rows_total, CHUNK_LINES):
            frame = pl.scan_parquet(path).slice(offset, CHUNK_LINES).collect()
            as_text = frame.select(
                [
                    (pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.f%z") if frame.schema[c].is_temporal() else pl.col(c))
                    .cast(pl.String)
                    .alias(c)
                    for c in header
                ]
            )
            yield [
                (offset + i + 1, [v if v is not None else "" for v in row], ",".join(str(v) for v in row), None)
                for i, row in enumerate(as_text.iter_rows())
            ]  # Parquet "lines" are row numbers from 1

    return header, chunks()


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class _Plan:
    """How a file's rows become candles: its format and which column holds what."""

    fmt: str
    header: list[str]
    time_col: str
    volume_col: str
    symbol_col: str | None


def _plan(header: list[str] | None, rows: list[Row], path: Path) -> _Plan:
    name = path.name
    if header is None:
        width = len(rows[0][1])
        if width in (12, 11) or (width >= 6 and _is_unix_like(rows[0][1][0])):
            columns = list(BINANCE_KLINE_COLUMNS[:width]) + [f"extra_{i}" for i in range(width - 12)]
            return _Plan("binance-klines", columns, "open_time", "volume", None)
        raise CandleSourceError(
            name, "unrecognised columns", f"no header and {width} columns per row", EXPECTED_FORMATS
        )

    lower = [h.strip().lower() for h in header]
    if "unix" in lower and "symbol" in lower and all(c in lower for c in ("open", "high", "low", "close")):
        volume = _cdd_volume_column(header, rows)
        if volume is None:
            raise CandleSourceError(
                name, "unrecognised columns", "CryptoDataDownload header without a 'Volume <base>' column"
            )
        return _Plan("cryptodatadownload", header, header[lower.index("unix")], volume, header[lower.index("symbol")])

    if lower[: len(BINANCE_KLINE_COLUMNS[:7])] == list(BINANCE_KLINE_COLUMNS[:7]):
        return _Plan("binance-klines", header, header[0], header[5], None)

    time_col = next((header[lower.index(c)] for c in TIME_COLUMNS if c in lower), None)
    missing = [c for c in VALUE_COLUMNS if c not in lower]
    if time_col is None or missing:
        wanted = ([] if time_col else ["a time column (timestamp/time/date)"]) + missing
        raise CandleSourceError(
            name,
            "unrecognised columns",
            f"found {','.join(header)!r}; missing {', '.join(wanted)}",
            EXPECTED_FORMATS,
        )
    symbol_col = header[lower.index("symbol")] if "symbol" in lower else None
    return _Plan("ohlcv", header, time_col, header[lower.index("volume")], symbol_col)


def _cdd_volume_column(header: list[str], rows) -> str | None:
    volumes = [h for h in header if h.strip().lower().startswith("volume ")]
    if not volumes:
        return None
    symbol_idx = [h.lower() for h in header].index("symbol")
    sample = rows[0][1][symbol_idx] if rows and len(rows[0][1]) > symbol_idx else ""
    compact = "".join(ch for ch in sample.upper() if ch.isalnum())
    for column in volumes:  # the base asset's volume: `Volume BTC` for BTC/USDT
        currency = column.split(None, 1)[1].strip().upper()
        if compact.startswith(currency):
            return column
    return volumes[0]


def _is_unix_like(value: str) -> bool:
    try:
        return float(value) > 1e8
    except ValueError:
        return False


def _build(plan: _Plan, rows: list[Row], path: Path) -> tuple[pl.DataFrame, int]:
    """Turn text rows into the raw candle frame, recording parse problems per row; also the number of
    naive (no UTC offset) ISO times taken as UTC."""
    header, time_col, volume_col, symbol_col = plan.header, plan.time_col, plan.volume_col, plan.symbol_col
    width = len(header)
    index = {h: i for i, h in enumerate(header)}
    lower_index = {h.strip().lower(): i for i, h in enumerate(header)}
    wanted = {
        "ts": index[time_col],
        "open": lower_index["open"],
        "high": lower_index["high"],
        "low": lower_index["low"],
        "close": lower_index["close"],
        "volume": index[volume_col],
    }
    if symbol_col is not None:
        wanted["symbol"] = index[symbol_col]

    columns: dict[str, list] = {k: [] for k in wanted}
    lines, raws, problems = [], [], []
    for number, fields, text, parse_problem in rows:
        lines.append(number)
        raws.append(text)
        if parse_problem is not None:
            problems.append([parse_problem])
            fields = []
        elif len(fields) == width:
            problems.append([])
        else:
            problems.append([f"expected {width} fields, found {len(fields)} (truncated or malformed line)"])
        for key, i in wanted.items():
            columns[key].append(fields[i] if i < len(fields) and fields[i] != "" else None)

    n = len(rows)
    text_frame = pl.DataFrame({k: pl.Series(k, v, dtype=pl.String) for k, v in columns.items()})
    numeric = {}
    for c in VALUE_COLUMNS:
        cleaned = text_frame[c].str.strip_chars()
        numeric[c] = cleaned.cast(pl.Float64, strict=False)
        for i in (cleaned.is_not_null() & numeric[c].is_null()).arg_true().to_list():
            problems[i].append(f"non-numeric value in '{c}'")

    ts, priority, ts_problem, naive_count = parse_times(text_frame["ts"])
    for i in ts_problem.is_not_null().arg_true().to_list():
        if not problems[i]:  # a line that could not be split has no time to speak of
            problems[i].append(ts_problem[i])

    if symbol_col is not None:
        symbol = text_frame.select(normalize_symbol_expr("symbol")).to_series()
        fallback = symbol_from_filename(path)
        if fallback is not None:
            symbol = symbol.fill_null(fallback)
    else:
        fallback = symbol_from_filename(path)
        if fallback is None:
            raise CandleSourceError(
                path.name, "unknown symbol", "the file has no symbol column and its name names no pair", NAME_HINT
            )
        symbol = pl.Series("symbol", [fallback] * n, dtype=pl.String)

    frame = raw_frame(
        {
            "symbol": symbol,
            "ts": ts,
            **{c: numeric[c] for c in VALUE_COLUMNS},
            "line": pl.Series("line", lines, dtype=pl.Int64),
            "raw": pl.Series("raw", raws, dtype=pl.String),
            "problem": pl.Series("problem", ["; ".join(p) if p else None for p in problems], dtype=pl.String),
            "priority": priority,
        },
        n,
    )
    return frame, naive_count


def parse_times(text: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series, int]:
    """Parse a column of Unix times (any unit, per value) or ISO 8601 text.

    Returns (UTC datetimes, priority, problem text, number of naive ISO times). The
    priority is the timestamp's precision (s=0, ms=1, us=2, ns=3; ISO text=0), so that
    where an hour appears twice the more precise record wins.
    """
    cleaned = text.str.strip_chars()
    number = cleaned.cast(pl.Float64, strict=False)
    magnitude = number.abs()
    unit_factor = pl.select(
        pl.when(magnitude < _SECONDS_MAX)
        .then(1_000_000.0)
        .when(magnitude < _MILLIS_MAX)
        .then(1_000.0)
        .when(magnitude < _MICROS_MAX)
        .then(1.0)
        .otherwise(0.001)
    ).to_series()
    priority = (
        pl.select(
            pl.when(magnitude < _SECONDS_MAX)
            .then(0)
            .when(magnitude < _MILLIS_MAX)
            .then(1)
            .when(magnitude < _MICROS_MAX)
            .then(2)
            .otherwise(3)
            .fill_null(0)
            .cast(pl.Int64)
        )
        .to_series()
        .alias("priority")
    )
    micros = (number * unit_factor).round(0)
    finite = micros.is_finite().fill_null(False) & (micros.abs() < 9e15)
    from_unix = pl.select(
        pl.when(finite).then(micros).otherwise(None).cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    ).to_series()

    values = cleaned.to_list()
    numbers = number.to_list()
    iso: list[datetime | None] = [None] * len(values)
    problems: list[str | None] = [None] * len(values)
    naive = 0
    for i, (value, num) in enumerate(zip(values, numbers)):
        if num is not None and finite[i]:
            continue
        if value is None:
            problems[i] = "missing time"
            continue
        parsed = _parse_iso(value)
        if parsed is None:
            problems[i] = f"unparsable time {value[:40]!r}"
            continue
        if parsed.tzinfo is None:
            naive += 1
            parsed = parsed.replace(tzinfo=timezone.utc)
        iso[i] = parsed.astimezone(timezone.utc)
    iso_series = pl.Series("ts", iso, dtype=pl.Datetime("us", "UTC"))
    ts = from_unix.fill_null(iso_series).alias("ts")
    return ts, priority, pl.Series("problem", problems, dtype=pl.String), naive


def _parse_iso(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
