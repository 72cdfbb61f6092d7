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
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from workflows.data.sources.candles import (
    VALUE_COLUMNS,
    CandleSourceError,
    ReadResult,
    normalize_symbol_expr,
    raw_frame,
    split_valid_rows,
    symbol_from_filename,
)

PARQUET_MAGIC = b"PAR1"
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


def read_candle_file(path: str | Path, *, now: datetime | None = None) -> ReadResult:
    """Read one candle file into valid candles and rejected rows."""
    path = Path(path)
    name = path.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CandleSourceError(name, "file not found", str(path)) from None
    except OSError as exc:
        raise CandleSourceError(name, "file not readable", str(exc)) from None
    if not data.strip():
        raise CandleSourceError(name, "empty file", "the file holds no data", EXPECTED_FORMATS)

    if data[:4] == PARQUET_MAGIC:
        header, rows = _parquet_rows(path, name)
        container = "parquet"
    else:
        if path.suffix.lower() == ".parquet":
            raise CandleSourceError(name, "not a Parquet file", "the file lacks the PAR1 magic bytes")
        header, rows = _csv_rows(data, name)
        container = "csv"

    notes: list[str] = []
    fmt, raw = _to_raw_frame(header, rows, path, notes)
    valid, rejected = split_valid_rows(raw, now=now)
    return ReadResult(source=name, candles=valid, rejected=rejected, format=f"{fmt}/{container}", notes=notes)


# --------------------------------------------------------------------------- input


def _csv_rows(data: bytes, name: str) -> tuple[list[str] | None, list[tuple[int, list[str], str]]]:
    """(header or None, [(line number, fields, line text)]) of a CSV text file."""
    if b"\x00" in data[:65536]:
        raise CandleSourceError(name, "binary content", "NUL bytes found; not a CSV text file", EXPECTED_FORMATS)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CandleSourceError(
            name, "binary content", f"not UTF-8 text at byte {exc.start}", EXPECTED_FORMATS
        ) from None

    lines = text.splitlines()
    rows: list[tuple[int, list[str], str]] = []
    # One record per line: candle files never need quoted fields spanning lines.
    for number, fields in enumerate(csv.reader(lines), start=1):
        if not fields or all(not f.strip() for f in fields):
            continue
        rows.append((number, [f.strip() for f in fields], lines[number - 1]))

    # CryptoDataDownload prefixes some exports with one line holding its URL.
    if rows and len(rows[0][1]) <= 2 and ("http" in rows[0][2].lower() or "www." in rows[0][2].lower()):
        rows = rows[1:]
    if not rows:
        raise CandleSourceError(name, "empty file", "no rows found", EXPECTED_FORMATS)

    first = rows[0][1]
    if _looks_like_header(first):
        header = [h.strip() for h in first]
        body = rows[1:]
        if not body:
            raise CandleSourceError(name, "header only", f"header {','.join(header)!r} but no data rows")
        return header, body
    return None, rows


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


def _parquet_rows(path: Path, name: str):
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # a corrupt Parquet file: report what the reader said
        raise CandleSourceError(name, "unreadable Parquet", str(exc).splitlines()[0]) from None
    if frame.height == 0:
        raise CandleSourceError(name, "header only", "the Parquet file has columns but no rows")
    header = frame.columns
    as_text = frame.select(
        [
            (pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.f%z") if frame.schema[c].is_temporal() else pl.col(c))
            .cast(pl.String)
            .alias(c)
            for c in header
        ]
    )
    rows = [
        (i + 1, [v if v is not None else "" for v in row], ",".join(str(v) for v in row))
        for i, row in enumerate(as_text.iter_rows())
    ]
    return header, rows  # Parquet "lines" are row numbers from 1


# --------------------------------------------------------------------------- formats


def _to_raw_frame(header, rows, path: Path, notes: list[str]) -> tuple[str, pl.DataFrame]:
    name = path.name
    if header is None:
        width = len(rows[0][1])
        if width in (12, 11) or (width >= 6 and _is_unix_like(rows[0][1][0])):
            columns = list(BINANCE_KLINE_COLUMNS[:width]) + [f"extra_{i}" for i in range(width - 12)]
            return "binance-klines", _build(columns, rows, path, "open_time", "volume", None, notes)
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
        return "cryptodatadownload", _build(
            header, rows, path, header[lower.index("unix")], volume, header[lower.index("symbol")], notes
        )

    if lower[: len(BINANCE_KLINE_COLUMNS[:7])] == list(BINANCE_KLINE_COLUMNS[:7]):
        return "binance-klines", _build(header, rows, path, header[0], header[5], None, notes)

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
    return "ohlcv", _build(header, rows, path, time_col, header[lower.index("volume")], symbol_col, notes)


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


def _build(header, rows, path: Path, time_col: str, volume_col: str, symbol_col: str | None, notes) -> pl.DataFrame:
    """Turn text rows into the raw candle frame, recording parse problems per row."""
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
    for number, fields, text in rows:
        lines.append(number)
        raws.append(text)
        problems.append(
            []
            if len(fields) == width
            else [f"expected {width} fields, found {len(fields)} (truncated or malformed line)"]
        )
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
    if naive_count:
        notes.append(f"{naive_count} timestamps had no UTC offset and were taken as UTC")
    for i in ts_problem.is_not_null().arg_true().to_list():
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
    return frame


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
