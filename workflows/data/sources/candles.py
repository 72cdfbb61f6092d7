"""The one candle frame every source returns, and the row rules every source obeys.

A candle frame has the columns of `CANDLE_SCHEMA`: `symbol, ts, open, high, low,
close, volume`, where `ts` is the UTC open time of the hour. Sources first build a
*raw* frame (the same columns, nullable, plus `line`, `raw`, `problem` and
`priority`), then call `split_valid_rows`, which applies the rules below and
returns the valid candles and the rejected rows, each rejection with its line and
reason. Nothing is dropped silently: every input row ends up in exactly one of
the two frames.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

# A polars Schema (not a dict): what DataFrame.cast and the type checker accept.
CANDLE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
    }
)
CANDLE_COLUMNS = list(CANDLE_SCHEMA)
PRICE_COLUMNS = ["open", "high", "low", "close"]
VALUE_COLUMNS = [*PRICE_COLUMNS, "volume"]

# A polars Schema (not a dict): what DataFrame.cast and the type checker accept.
REJECTED_SCHEMA = pl.Schema(
    {
        "line": pl.Int64(),
        "symbol": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "reason": pl.String(),
        "raw": pl.String(),
    }
)

HOUR_US = 3_600_000_000
# An hourly candle whose high is more than this multiple of its low is not a
# market move but a data error (e.g. the 16,199.91 open of BTC/USDT's first hour
# on Binance against a close of 4,308.83). Configurable per call.
MAX_HOURLY_RANGE = 3.0
# Plausibility bounds: no crypto market traded before Bitcoin's genesis block (2009-01-03), and no
# pair quotes a price above 1e9 (BTC in Turkish lira is about 3e6); a timestamp of 0 or a price of
# 1e300 is a broken export, not a candle.
EARLIEST_TIME = datetime(2009, 1, 3, tzinfo=timezone.utc)
MAX_PRICE = 1e9

# Quote currencies recognised at the end of a symbol written without separator.
QUOTE_CURRENCIES = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDP",
    "DAI",
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "TRY",
    "BRL",
    "AUD",
    "BTC",
    "ETH",
    "BNB",
)


class CandleSourceError(ValueError):
    """A whole input cannot be used. The message names the input, the rule and the fix."""

    def __init__(self, source: str, rule: str, detail: str, hint: str = ""):
        self.source = source
        self.rule = rule
        self.detail = detail
        self.hint = hint
        message = f"{source}: {rule}: {detail}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


@dataclass
class ReadResult:
    """Valid candles plus every rejected row, with notes for the run's metadata."""

    source: str
    candles: pl.DataFrame
    rejected: pl.DataFrame
    format: str
    notes: list[str] = field(default_factory=list)
    file_version: str | None = None  # "size:mtime_ns" of the file as read (files only)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.candles["symbol"].unique().to_list())

    def for_symbol(self, symbol: str) -> "ReadResult":
        """The part of this result that belongs to one symbol (rows without a symbol stay)."""
        keep = pl.col("symbol") == symbol
        return ReadResult(
            source=self.source,
            candles=self.candles.filter(keep),
            rejected=self.rejected.filter(keep | pl.col("symbol").is_null()),
            format=self.format,
            notes=list(self.notes),
            file_version=self.file_version,
        )


def ts_bounds(frame: pl.DataFrame, column: str = "ts") -> tuple[datetime, datetime]:
    """First and last time of a non-empty frame's datetime column, typed as datetimes."""
    first, last = frame[column].min(), frame[column].max()
    if not (isinstance(first, datetime) and isinstance(last, datetime)):
        raise TypeError(f"column {column!r} holds no datetimes (min {first!r}); expected a non-empty candle frame")
    return first, last


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTED_SCHEMA)


def normalize_symbol(raw: str) -> str:
    """`BTC/USDT`, `btc-usdt`, `BTC_USDT` and `BTCUSDT` are all `BTCUSDT`."""
    symbol = re.sub(r"[^A-Za-z0-9]", "", raw or "").upper()
    if not symbol:
        raise ValueError(f"empty symbol {raw!r}")
    return symbol


def normalize_symbol_expr(column: str = "symbol") -> pl.Expr:
    cleaned = pl.col(column).str.replace_all(r"[^A-Za-z0-9]", "").str.to_uppercase()
    return pl.when(cleaned.str.len_chars() > 0).then(cleaned).otherwise(None)


def symbol_from_filename(path: str | Path) -> str | None:
    """The trading pair named in a file name, e.g. `BTCUSDT-1h-2024-01.csv` or
    `Binance_ETHUSDT_1h.csv`; None when the name holds none."""
    for token in re.split(r"[^A-Za-z0-9]+", Path(path).name):
        upper = token.upper()
        for quote in QUOTE_CURRENCIES:
            if upper.endswith(quote) and len(upper) - len(quote) >= 2 and upper.isalnum():
                base = upper[: -len(quote)]
                if not base.isdigit():
                    return upper
    return None


def check_symbol(key: str) -> str:
    """The one symbol rule, for every partition key and symbol argument: the key is a trading pair exactly as
    stored (upper-case letters and digits, a base and a known quote currency). Returns it; raises ValueError
    naming the key and the rule otherwise. Paths are joined from symbols (checkpoints/<symbol>/...), so a key
    such as `../../outside` must never get as far as a path."""
    if not isinstance(key, str) or not re.fullmatch(r"[A-Z0-9]{4,30}", key) or symbol_from_filename(key) != key:
        raise ValueError(
            f"{key!r} is not a symbol: expected a trading pair written as stored, upper-case letters and digits "
            f"ending in a quote currency ({', '.join(QUOTE_CURRENCIES)}), e.g. BTCUSDT; remove that partition "
            "(Dagster UI: the symbols partitions) and add the normalised one"
        )
    return key


def split_valid_rows(
    raw: pl.DataFrame,
    *,
    now: datetime | None = None,
    max_hourly_range: float = MAX_HOURLY_RANGE,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the candle rules to a raw frame; return (valid candles, rejected rows).

    `raw` has the candle columns (nullable) plus `line` (Int64, where the row came
    from), `raw` (its text), `problem` (a parse problem already found, or null) and
    `priority` (which of two rows for the same hour wins: higher first, then the
    later line). Every reason that applies to a row is reported, joined by "; ".
    A source read in chunks calls `check_rows` per chunk and `resolve_duplicates` once.
    """
    good, bad = check_rows(raw, now=now, max_hourly_range=max_hourly_range)
    valid, duplicates = resolve_duplicates(good)
    return valid, pl.concat([bad, duplicates], how="vertical").sort("line").cast(REJECTED_SCHEMA)


def check_rows(
    raw: pl.DataFrame, *, now: datetime | None = None, max_hourly_range: float = MAX_HOURLY_RANGE
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The row rules on a raw frame: (rows that pass, raw columns kept; rejected rows with their reasons)."""
    now = now or datetime.now(timezone.utc)
    now_lit = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    earliest = pl.lit(EARLIEST_TIME).cast(pl.Datetime("us", "UTC"))
    finite = [pl.col(c).is_finite() for c in VALUE_COLUMNS]
    rules: list[tuple[pl.Expr, str]] = [
        (pl.col("symbol").is_null(), "missing symbol"),
        (pl.col("ts").is_null() & pl.col("problem").is_null(), "missing time"),
        (
            pl.any_horizontal(*[pl.col(c).is_null() for c in VALUE_COLUMNS]) & pl.col("problem").is_null(),
            "missing value",
        ),
        (~pl.all_horizontal(*[f.fill_null(True) for f in finite]), "NaN or infinite value"),
        (pl.any_horizontal(*[pl.col(c) <= 0 for c in PRICE_COLUMNS]).fill_null(False), "non-positive price"),
        (
            pl.any_horizontal(*[pl.col(c) > MAX_PRICE for c in PRICE_COLUMNS]).fill_null(False)
            & pl.all_horizontal(*[f.fill_null(True) for f in finite]),
            f"implausible price (above {MAX_PRICE:.0e})",
        ),
        ((pl.col("volume") < 0).fill_null(False), "negative volume"),
        ((pl.col("high") < pl.col("low")).fill_null(False), "high below low"),
        (
            (
                (pl.max_horizontal("open", "close") > pl.col("high"))
                | (pl.min_horizontal("open", "close") < pl.col("low"))
            ).fill_null(False)
            & (pl.col("high") >= pl.col("low")).fill_null(False),
            "open or close outside the high-low range",
        ),
        (
            (pl.col("high") > pl.col("low") * max_hourly_range).fill_null(False) & (pl.col("low") > 0).fill_null(False),
            f"implausible hourly range (high > {max_hourly_range:g} x low)",
        ),
        ((pl.col("ts").dt.epoch("us") % HOUR_US != 0).fill_null(False), "off-the-hour time"),
        (
            (pl.col("ts") < earliest).fill_null(False),
            f"time before {EARLIEST_TIME:%Y-%m-%d} (before any crypto market)",
        ),
        ((pl.col("ts") > now_lit).fill_null(False), "future time"),
    ]
    reasons = pl.concat_list(
        [pl.col("problem")] + [pl.when(cond).then(pl.lit(text)).otherwise(None) for cond, text in rules]
    ).list.drop_nulls()
    checked = raw.with_columns(reason=reasons.list.join("; ")).with_columns(
        reason=pl.when(pl.col("reason") == "").then(None).otherwise(pl.col("reason"))
    )
    good = checked.filter(pl.col("reason").is_null()).drop("reason")
    bad = checked.filter(pl.col("reason").is_not_null()).select(list(REJECTED_SCHEMA)).cast(REJECTED_SCHEMA)
    return good, bad


def resolve_duplicates(good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows that passed the rules -> (valid candles, rejected duplicates).

    Two rows for the same hour: the higher priority (then the later line) wins; the
    other is rejected, pointing at the line that was kept. Only the rows whose hour appears
    more than once are ranked (the rest pass as they are: no copies of a large file's rows)."""
    repeated = good.select("symbol", "ts").is_duplicated()
    single = good.filter(~repeated).select(CANDLE_COLUMNS)
    if not repeated.any():
        return single.sort("symbol", "ts").cast(CANDLE_SCHEMA), empty_rejected()
    ranked = good.filter(repeated).sort(["symbol", "ts", "priority", "line"], descending=[False, False, True, True])
    ranked = ranked.with_columns(
        kept_line=pl.col("line").first().over("symbol", "ts"),
        is_first=pl.int_range(pl.len()).over("symbol", "ts") == 0,
    )
    same_values = pl.all_horizontal(*[pl.col(c) == pl.col(c).first().over("symbol", "ts") for c in VALUE_COLUMNS])
    dup_reason = (
        pl.when(pl.col("_same"))
        .then(pl.format("duplicate hour: identical to line {}", pl.col("kept_line")))
        .otherwise(pl.format("duplicate hour with conflicting values: line {} was kept", pl.col("kept_line")))
    )
    ranked = ranked.with_columns(_same=same_values)
    duplicates = ranked.filter(~pl.col("is_first")).with_columns(reason=dup_reason)
    if "raw" not in duplicates.columns:  # a chunked reader drops the text and fills it in for these rows only
        duplicates = duplicates.with_columns(raw=pl.lit(None, dtype=pl.String))
    kept = ranked.filter(pl.col("is_first")).select(CANDLE_COLUMNS)
    valid = pl.concat([single, kept], how="vertical").sort("symbol", "ts")
    return valid.cast(CANDLE_SCHEMA), duplicates.select(list(REJECTED_SCHEMA)).cast(REJECTED_SCHEMA)


def raw_frame(columns: dict[str, pl.Series | list], n: int) -> pl.DataFrame:
    """Build a raw frame with defaults for the bookkeeping columns a source did not set."""
    base: dict[str, pl.Series | list] = {
        "line": pl.Series("line", range(1, n + 1), dtype=pl.Int64),
        "raw": pl.Series("raw", [None] * n, dtype=pl.String),
        "problem": pl.Series("problem", [None] * n, dtype=pl.String),
        "priority": pl.Series("priority", [0] * n, dtype=pl.Int64),
    }
    base.update(columns)
    frame = pl.DataFrame(base)
    return frame.with_columns(
        pl.col("symbol").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us", "UTC")),
        *[pl.col(c).cast(pl.Float64) for c in VALUE_COLUMNS],
        pl.col("line").cast(pl.Int64),
        pl.col("priority").cast(pl.Int64),
    )


def from_candles(source: str, candles: pl.DataFrame, fmt: str, *, now: datetime | None = None) -> ReadResult:
    """Validate an already-typed candle frame (synthetic data, exchange responses)."""
    n = candles.height
    raw = raw_frame({c: candles[c] for c in CANDLE_COLUMNS}, n)
    valid, rejected = split_valid_rows(raw, now=now)
    return ReadResult(source=source, candles=valid, rejected=rejected, format=fmt)
