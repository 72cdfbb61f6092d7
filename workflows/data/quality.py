"""Data-quality rules for the stored tables, as plain functions returning findings.

Each returns a `Finding`: whether it passed, whether a failure should block
downstream work, a one-line summary and the failing rows (for the UI).
"""

from dataclasses import dataclass

import polars as pl

from workflows.data.schemas import CandlesSchema, FeaturesSchema, validate
from workflows.data.warehouse import CandleSpan

# Above this share of missing hours between the first and last candle, a symbol's
# history is too holey to train on (blocks); above WARN_MISSING it only warns.
MAX_MISSING_RATIO = 0.10
WARN_MISSING_RATIO = 0.01


@dataclass
class Finding:
    name: str
    passed: bool
    summary: str
    failing: pl.DataFrame | None = None
    blocking: bool = True
    value: float | None = None


def _schema_finding(name: str, schema, frame: pl.DataFrame) -> Finding:
    cases = validate(schema, frame)
    if cases is None:
        return Finding(name, True, f"{frame.height} rows satisfy the schema")
    cases = cases.select([c for c in ("column", "check", "index", "failure_case") if c in cases.columns])
    # `index` is a row of the frame checked, which may be a slice: name the row by its hour (and
    # the file it came from, where stored) so a failure reads the same whatever was loaded.
    where = [c for c in ("ts", "source") if c in frame.columns]
    if where and "index" in cases.columns:
        rows = frame.select(where).with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
        cases = cases.with_columns(pl.col("index").cast(pl.Int64)).join(rows, on="index", how="left")
        cases = cases.select("column", "check", *where, "failure_case")
    return Finding(name, False, f"{cases.height} schema violations", failing=cases)


def candles_schema(frame: pl.DataFrame) -> Finding:
    return _schema_finding("candles_schema", CandlesSchema, frame)


def features_schema(frame: pl.DataFrame) -> Finding:
    return _schema_finding("features_schema", FeaturesSchema, frame)


def duplicate_hours(frame: pl.DataFrame) -> Finding:
    dups = frame.filter(pl.len().over("symbol", "ts") > 1).sort("symbol", "ts")
    if dups.is_empty():
        return Finding("duplicate_hours", True, "every (symbol, hour) appears once")
    return Finding("duplicate_hours", False, f"{dups.height} rows share an hour", failing=dups)


def ohlc_consistent(frame: pl.DataFrame) -> Finding:
    bad = frame.filter(
        (pl.col("high") < pl.max_horizontal("open", "close", "low"))
        | (pl.col("low") > pl.min_horizontal("open", "close"))
    )
    if bad.is_empty():
        return Finding("ohlc_consistent", True, "low <= open, close <= high on every row")
    return Finding("ohlc_consistent", False, f"{bad.height} rows break low <= open, close <= high", failing=bad)


def missing_hour_ratio(frame: pl.DataFrame, span: CandleSpan | None = None) -> Finding:
    """The share of missing hours between the symbol's first and last candle. `frame` is every
    stored candle, or (with `span`, the whole symbol's count and bounds) the rows just written
    and the one before them: the ratio is the symbol's, the gaps listed are those in `frame`."""
    if frame.is_empty() or (span is not None and span.hours == 0):
        return Finding("missing_hour_ratio", False, "no candles stored for this symbol", value=1.0)
    ordered = frame.sort("ts")
    if span is None:
        span = CandleSpan(frame.height, ordered["ts"][0], ordered["ts"][-1])
    expected, hours = span.expected, span.hours
    ratio = (expected - hours) / expected
    gaps = (
        ordered.select(
            gap_after=pl.col("ts").shift(1),
            next_hour=pl.col("ts"),
            missing_hours=((pl.col("ts") - pl.col("ts").shift(1)).dt.total_hours() - 1),
        )
        .filter(pl.col("missing_hours") > 0)
        .sort("missing_hours", descending=True)
    )
    checked = ""
    if hours != frame.height:  # a slice: name it
        checked = f" among the {frame.height} hours checked from {ordered['ts'][0]:%Y-%m-%d %H:%M} on"
    summary = f"{expected - hours} of {expected} hours missing ({ratio:.3%}) in {gaps.height} gaps{checked}"
    passed = ratio <= WARN_MISSING_RATIO
    return Finding(
        "missing_hour_ratio",
        passed,
        summary,
        failing=gaps if gaps.height else None,
        blocking=ratio > MAX_MISSING_RATIO,
        value=ratio,
    )


def segments_contiguous(frame: pl.DataFrame) -> Finding:
    """Inside a segment, consecutive feature rows are exactly one hour apart."""
    steps = frame.sort("symbol", "ts").with_columns(
        step_hours=(pl.col("ts").diff().over("symbol", "segment")).dt.total_hours()
    )
    bad = steps.filter(pl.col("step_hours").is_not_null() & (pl.col("step_hours") != 1))
    if bad.is_empty():
        return Finding("segments_contiguous", True, "every segment is a run of consecutive hours")
    return Finding("segments_contiguous", False, f"{bad.height} rows jump inside a segment", failing=bad)


def candle_findings(frame: pl.DataFrame, span: CandleSpan | None = None) -> list[Finding]:
    """Every candle rule on `frame`: all of a symbol's candles, or (with the symbol's `span`) the
    rows a write changed and the stored row before them. The row rules (schema, OHLC) need only
    the rows written; duplicates cannot be stored (primary key) and are checked within `frame`;
    the missing-hour ratio comes from `span`, its gaps from `frame`, whose first row is the
    boundary a new gap would open at."""
    return [candles_schema(frame), duplicate_hours(frame), ohlc_consistent(frame), missing_hour_ratio(frame, span)]


def feature_findings(frame: pl.DataFrame) -> list[Finding]:
    return [features_schema(frame), segments_contiguous(frame)]


CANDLE_CHECKS = ["candles_schema", "duplicate_hours", "ohlc_consistent", "missing_hour_ratio"]
FEATURE_CHECKS = ["features_schema", "segments_contiguous"]
