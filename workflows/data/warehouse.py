"""The DuckDB warehouse: explicit SQL, idempotent writes, one transaction per write.

Times are stored as naive `TIMESTAMP` holding UTC (no session time-zone can shift
them) and come back as polars `Datetime("us", "UTC")`. Every write of a symbol's
slice happens inside one transaction, so a crash leaves either all or none of it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl

from workflows.data.features import FEATURE_COLUMNS
from workflows.data.sources.candles import CANDLE_COLUMNS, CANDLE_SCHEMA, VALUE_COLUMNS
from workflows.data.tables import ensure

CANDLE_TABLES = ("candles", "candles_rejected", "candles_changed")


@dataclass(frozen=True)
class UpsertStats:
    inserted: int
    updated: int
    unchanged: int
    first_changed: datetime | None = None  # the first hour inserted or updated (UTC); None: nothing written


def rollback(con: duckdb.DuckDBPyConnection, error: BaseException) -> None:
    """Roll back after `error` without hiding it.

    When COMMIT itself fails (disk full, file-size limit), DuckDB has already ended the
    transaction and ROLLBACK raises "no transaction is active": that second error is only
    noted on `error`, so the caller re-raises the one that says what went wrong."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as again:
        error.add_note(f"(the ROLLBACK after it failed too: {again})")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN a transaction, COMMIT it when the block ends, ROLLBACK when anything raises (KeyboardInterrupt
    included): the block's writes land all or none, and the error that ended it is the one raised."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException as error:
        rollback(con, error)
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    ensure(con, *CANDLE_TABLES)


def _naive_utc(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return frame.with_columns(
        [pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None) for c in columns if c in frame.columns]
    )


def _aware_utc(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return frame.with_columns(
        [pl.col(c).cast(pl.Datetime("us")).dt.replace_time_zone("UTC") for c in columns if c in frame.columns]
    )


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def upsert_candles(
    con: duckdb.DuckDBPyConnection, candles: pl.DataFrame, source: str, ingested_at: datetime | None = None
) -> UpsertStats:
    """Insert new hours, update hours whose values changed, leave identical hours alone.

    Ingesting the same candles twice changes nothing (not even `ingested_at`).
    """
    ensure_schema(con)
    if candles.is_empty():
        return UpsertStats(0, 0, 0)
    stamp = (ingested_at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    staged = _naive_utc(candles.select(CANDLE_COLUMNS), "ts").with_columns(
        source=pl.lit(source), ingested_at=pl.lit(stamp)
    )
    differs = " OR ".join(f"c.{c} IS DISTINCT FROM s.{c}" for c in VALUE_COLUMNS)
    con.register("staged_candles", staged)
    try:
        with transaction(con):
            changed = con.execute(
                f"""
                SELECT s.symbol, min(s.ts)
                  FROM staged_candles AS s
                  LEFT JOIN candles AS c ON c.symbol = s.symbol AND c.ts = s.ts
                 WHERE c.ts IS NULL OR ({differs})
                 GROUP BY s.symbol
                """
            ).fetchall()
            for symbol, first_ts in changed:
                con.execute(
                    "INSERT INTO candles_changed VALUES (?, ?) "
                    "ON CONFLICT (symbol) DO UPDATE SET first_ts = least(candles_changed.first_ts, excluded.first_ts)",
                    [symbol, first_ts],
                )
            updated = con.execute(
                f"""
                UPDATE candles AS c
                   SET open = s.open, high = s.high, low = s.low, close = s.close,
                       volume = s.volume, source = s.source, ingested_at = s.ingested_at
                  FROM staged_candles AS s
                 WHERE c.symbol = s.symbol AND c.ts = s.ts AND ({differs})
                """
            ).fetchall()[0][0]
            inserted = con.execute(
                """
                INSERT INTO candles
                SELECT s.symbol, s.ts, s.open, s.high, s.low, s.close, s.volume, s.source, s.ingested_at
                  FROM staged_candles AS s
                 WHERE NOT EXISTS (SELECT 1 FROM candles c WHERE c.symbol = s.symbol AND c.ts = s.ts)
                """
            ).fetchall()[0][0]
    finally:
        con.unregister("staged_candles")
    first = min((ts for _, ts in changed), default=None)
    return UpsertStats(
        int(inserted),
        int(updated),
        candles.height - int(inserted) - int(updated),
        None if first is None else first.replace(tzinfo=timezone.utc),
    )


def record_rejections(
    con: duckdb.DuckDBPyConnection, file: str, rejected: pl.DataFrame, symbol: str | None = None
) -> int:
    """Replace the rejections recorded for `file` (and `symbol`, if given) by `rejected`."""
    ensure_schema(con)
    staged = _naive_utc(rejected, "ts").with_columns(file=pl.lit(file), rejected_at=pl.lit(_now()))
    staged = staged.select("file", "line", "symbol", "ts", "reason", "raw", "rejected_at")
    con.register("staged_rejected", staged)
    try:
        with transaction(con):
            if symbol is None:
                con.execute("DELETE FROM candles_rejected WHERE file = ?", [file])
            else:
                con.execute(
                    "DELETE FROM candles_rejected WHERE file = ? AND (symbol = ? OR symbol IS NULL)", [file, symbol]
                )
            con.execute("INSERT INTO candles_rejected SELECT * FROM staged_rejected")
    finally:
        con.unregister("staged_rejected")
    return rejected.height


def remove_source(con: duckdb.DuckDBPyConnection, symbol: str, source: str) -> tuple[int, datetime | None]:
    """Delete the candles of `symbol` last written from the file `source`, and that file's rejections for it.

    Returns (rows removed, first hour removed). The symbol's features are marked for a rebuild
    from that hour (`candles_changed`) in the same transaction. Rows another file wrote first
    and `source` then overwrote go too: their earlier values are not kept (land that file again)."""
    ensure_schema(con)
    count, first = con.execute(
        "SELECT count(*), min(ts) FROM candles WHERE symbol = ? AND source = ?", [symbol, source]
    ).fetchone() or (0, None)
    with transaction(con):
        if count:
            con.execute("DELETE FROM candles WHERE symbol = ? AND source = ?", [symbol, source])
            con.execute(
                "INSERT INTO candles_changed VALUES (?, ?) "
                "ON CONFLICT (symbol) DO UPDATE SET first_ts = least(candles_changed.first_ts, excluded.first_ts)",
                [symbol, first],
            )
        con.execute("DELETE FROM candles_rejected WHERE file = ? AND symbol = ?", [source, symbol])
    return int(count), None if first is None else first.replace(tzinfo=timezone.utc)


def load_candles(con: duckdb.DuckDBPyConnection, symbol: str) -> pl.DataFrame:
    """One symbol's candles in time order: never another symbol's rows."""
    ensure_schema(con)
    frame = con.execute(f"SELECT {', '.join(CANDLE_COLUMNS)} FROM candles WHERE symbol = ? ORDER BY ts", [symbol]).pl()
    return _aware_utc(frame, "ts").cast(CANDLE_SCHEMA)


def load_candles_from(con: duckdb.DuckDBPyConnection, symbol: str, start: datetime | None) -> pl.DataFrame:
    """One symbol's candles (with their `source`) from `start` on and the stored row right before
    it: what a write from `start` on can have changed, and the neighbour that gap and continuity
    rules compare it with (found by `max(ts)`, not by sorting the symbol). None: no rows."""
    ensure_schema(con)
    naive = None if start is None else start.astimezone(timezone.utc).replace(tzinfo=None)
    frame = con.execute(
        f"""
        SELECT {", ".join([*CANDLE_COLUMNS, "source"])} FROM candles
         WHERE symbol = $symbol
           AND ts >= coalesce((SELECT max(ts) FROM candles WHERE symbol = $symbol AND ts < $start), $start)
         ORDER BY ts
        """,
        {"symbol": symbol, "start": naive},
    ).pl()
    return _aware_utc(frame, "ts").cast({**CANDLE_SCHEMA, "source": pl.String})


@dataclass(frozen=True)
class CandleSpan:
    """One symbol's stored hours: how many, the first and the last (UTC; None when there are none)."""

    hours: int
    first: datetime | None
    last: datetime | None

    @property
    def expected(self) -> int:
        """Hours from the first to the last stored hour, both included."""
        if self.first is None or self.last is None:
            return 0
        return int((self.last - self.first).total_seconds() // 3600) + 1

    @property
    def missing(self) -> int:
        return self.expected - self.hours


def candle_span(con: duckdb.DuckDBPyConnection, symbol: str) -> CandleSpan:
    """Count, first and last hour of one symbol's candles: one aggregate in DuckDB, nothing loaded."""
    ensure_schema(con)
    row = con.execute("SELECT count(*), min(ts), max(ts) FROM candles WHERE symbol = ?", [symbol]).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    hours, first, last = row
    return CandleSpan(
        int(hours),
        None if first is None else first.replace(tzinfo=timezone.utc),
        None if last is None else last.replace(tzinfo=timezone.utc),
    )


def load_rejected(con: duckdb.DuckDBPyConnection, symbol: str | None = None) -> pl.DataFrame:
    ensure_schema(con)
    if symbol is None:
        frame = con.execute("SELECT * FROM candles_rejected ORDER BY file, line").pl()
    else:
        frame = con.execute("SELECT * FROM candles_rejected WHERE symbol = ? ORDER BY file, line", [symbol]).pl()
    return _aware_utc(frame, "ts", "rejected_at")


def replace_table_slice(con: duckdb.DuckDBPyConnection, table: str, symbol: str, frame: pl.DataFrame) -> None:
    """Replace one symbol's rows of `table` (created first where missing) by `frame`, atomically (delete +
    insert)."""
    ensure(con, table)
    staged = _naive_utc(frame, *[c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])
    con.register("staged_slice", staged)
    try:
        with transaction(con):
            con.execute(f"DELETE FROM {table} WHERE symbol = ?", [symbol])
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged_slice")
    finally:
        con.unregister("staged_slice")


@dataclass(frozen=True)
class Replacement:
    """One part of a `replace_together` write: delete the rows of `table` matching `where` (SQL with `?`
    parameters; it may read this part's staged rows as `staged_rows`), then insert `frame` (a frame without
    columns only deletes)."""

    table: str
    where: str
    params: list
    frame: pl.DataFrame


def replace_together(con: duckdb.DuckDBPyConnection, parts: list[Replacement]) -> list[int]:
    """Every part's delete and insert in ONE transaction: a crash (or kill -9) anywhere leaves all parts as
    they were or all written, never one table ahead of another. Returns the rows each part deleted."""
    ensure(con, *[part.table for part in parts])
    deleted = []
    with transaction(con):
        for part in parts:
            staged = _naive_utc(part.frame, *[c for c, t in part.frame.schema.items() if isinstance(t, pl.Datetime)])
            if staged.width:
                con.register("staged_rows", staged)
            try:
                deleted.append(
                    int(con.execute(f"DELETE FROM {part.table} WHERE {part.where}", part.params).fetchall()[0][0])
                )
                if not staged.is_empty():
                    con.execute(f"INSERT INTO {part.table} BY NAME SELECT * FROM staged_rows")
            finally:
                if staged.width:
                    con.unregister("staged_rows")
    return deleted


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, where: str, params: list, frame: pl.DataFrame) -> int:
    """Delete the rows of `table` matching `where` (SQL with `?` parameters; it may read the staged rows as
    `staged_rows`), then insert `frame`, in one transaction: all or nothing. Returns the rows deleted."""
    return replace_together(con, [Replacement(table, where, params, frame)])[0]


def load_table_slice(con: duckdb.DuckDBPyConnection, table: str, symbol: str) -> pl.DataFrame:
    frame = con.execute(f"SELECT * FROM {table} WHERE symbol = ? ORDER BY ts", [symbol]).pl()
    return _aware_utc(frame, *[c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])


class MissingFeaturesError(ValueError):
    """A symbol with no feature rows: nothing can be trained, evaluated or forecast for it."""

    def __init__(self, database: str, symbol: str):
        self.symbol = symbol
        super().__init__(
            f"{database}: no feature rows for {symbol} (table `features`): land its candles and compute its "
            f"features first: `workflows run --symbol {symbol}` (its landed candles, or with --exchange), "
            f"`workflows ingest` for files in incoming/, or materialise `candles` and `features` for {symbol}"
        )


def database_file(con: duckdb.DuckDBPyConnection) -> str:
    """The file `con` is open on ("an in-memory warehouse" for none), for messages."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return str(row[0]) if row and row[0] else "an in-memory warehouse"


def load_features(con: duckdb.DuckDBPyConnection, symbol: str) -> tuple[pl.DataFrame, str]:
    """One symbol's feature rows and their data version.
    Raises `MissingFeaturesError` (saying how to make them) when the symbol has none."""
    rows = load_table_slice(con, "features", symbol) if table_exists(con, "features") else pl.DataFrame()
    if rows.is_empty():
        raise MissingFeaturesError(database_file(con), symbol)
    return rows, slice_fingerprint(con, "features", symbol, ["ts", *FEATURE_COLUMNS])


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()[0][0]
    )


def slice_fingerprint(con: duckdb.DuckDBPyConnection, table: str, symbol: str, columns: list[str]) -> str:
    """A content hash of one symbol's rows over `columns`: identical data, identical version."""
    count, digest = con.execute(
        f"SELECT count(*), coalesce(sum(hash({', '.join(columns)})), 0) FROM {table} WHERE symbol = ?",
        [symbol],
    ).fetchall()[0]
    return f"{count}-{int(digest) & ((1 << 64) - 1):016x}"


def candle_sources(con: duckdb.DuckDBPyConnection, symbol: str) -> list[str]:
    """Distinct sources of one symbol's stored candles (e.g. to label synthetic data)."""
    ensure_schema(con)
    return [
        r[0]
        for r in con.execute("SELECT DISTINCT source FROM candles WHERE symbol = ? ORDER BY 1", [symbol]).fetchall()
    ]


@dataclass(frozen=True)
class FeatureRefresh:
    """What `refresh_features` did: nothing, a full rebuild, or a rebuild from one hour on."""

    mode: str  # "unchanged" | "full" | "incremental"
    rebuilt_from: datetime | None
    hours_recomputed: int
    rows_written: int


def ensure_feature_tables(con: duckdb.DuckDBPyConnection) -> None:
    ensure(con, *CANDLE_TABLES, "features", "feature_state", "feature_builds")


def first_changed_hour(con: duckdb.DuckDBPyConnection, symbol: str) -> datetime | None:
    """The first hour whose candle differs from the one its stored feature state was built from
    (new, corrected or removed); None when every stored hour is up to date."""
    values = ("open", "high", "low", "close", "volume")
    differs = " OR ".join(f"c.{v} IS DISTINCT FROM s.{v}" for v in values)
    cols = ", ".join(("ts", *values))
    row = con.execute(
        f"""
        SELECT min(coalesce(c.ts, s.ts))
          FROM (SELECT {cols} FROM candles WHERE symbol = $symbol) AS c
          FULL OUTER JOIN (SELECT {cols} FROM feature_state WHERE symbol = $symbol) AS s ON c.ts = s.ts
         WHERE c.ts IS NULL OR s.ts IS NULL OR {differs}
        """,
        {"symbol": symbol},
    ).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    return None if row[0] is None else row[0].replace(tzinfo=timezone.utc)


def _state_before(con: duckdb.DuckDBPyConnection, symbol: str, start: datetime) -> pl.DataFrame:
    """The stored state rows of the segment tail right before `start` (at most TAIL_ROWS + a few)."""
    from workflows.data.feature_state import TAIL_ROWS

    naive = start.astimezone(timezone.utc).replace(tzinfo=None)
    row = con.execute("SELECT max(ts) FROM feature_state WHERE symbol = ? AND ts < ?", [symbol, naive]).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    (last,) = row
    if last is None:
        return pl.DataFrame()
    frame = con.execute(
        "SELECT * FROM feature_state WHERE symbol = ? AND ts BETWEEN ? AND ? ORDER BY ts",
        [symbol, last - timedelta(hours=TAIL_ROWS), last],
    ).pl()
    return _aware_utc(frame, "ts")


def refresh_features(
    con: duckdb.DuckDBPyConnection, symbol: str, full: bool = False, compare: bool = False
) -> FeatureRefresh:
    """Bring one symbol's `features` up to date with its candles, from the first changed hour on.

    The first changed hour is the one `upsert_candles` recorded in `candles_changed`
    (`compare=True`: found instead by comparing every stored candle with the values its
    state was built from, for candles written by other means). New hours extend the last
    segment from the state stored at its end; a late or corrected hour rebuilds that
    symbol's rows from that hour on; no state (or state of another `STATE_VERSION`, or
    `full=True`) rebuilds the symbol from its first candle. Deletes and inserts happen in
    one transaction, and only this symbol's rows are read or written.
    """
    from workflows.data.feature_state import STATE_VERSION, extend

    ensure_feature_tables(con)
    stored = con.execute("SELECT state_version FROM feature_builds WHERE symbol = ?", [symbol]).fetchone()
    if full or stored is None or stored[0] != STATE_VERSION:
        start, prior = None, None
    else:
        if compare:
            start = first_changed_hour(con, symbol)
        else:
            marked = con.execute("SELECT first_ts FROM candles_changed WHERE symbol = ?", [symbol]).fetchone()
            start = marked[0].replace(tzinfo=timezone.utc) if marked else None
        if start is None:
            return FeatureRefresh("unchanged", None, 0, 0)
        prior = _state_before(con, symbol, start)
    where, params = ("symbol = ?", [symbol]) if start is None else ("symbol = ? AND ts >= ?", [symbol, start])
    params = [p.replace(tzinfo=None) if isinstance(p, datetime) else p for p in params]
    candles = _aware_utc(
        con.execute(f"SELECT {', '.join(CANDLE_COLUMNS)} FROM candles WHERE {where} ORDER BY ts", params).pl(), "ts"
    )
    result = extend(symbol, candles, prior)
    con.register("staged_features", _naive_utc(result.features, "ts"))
    con.register("staged_state", _naive_utc(result.state, "ts"))
    try:
        with transaction(con):
            con.execute(f"DELETE FROM features WHERE {where}", params)
            con.execute(f"DELETE FROM feature_state WHERE {where}", params)
            con.execute("DELETE FROM candles_changed WHERE symbol = ?", [symbol])
            con.execute("INSERT INTO features BY NAME SELECT * FROM staged_features")
            con.execute("INSERT INTO feature_state BY NAME SELECT * FROM staged_state")
            con.execute("INSERT OR REPLACE INTO feature_builds VALUES (?, ?, ?)", [symbol, STATE_VERSION, _now()])
    finally:
        con.unregister("staged_features")
        con.unregister("staged_state")
    mode = "full" if start is None else "incremental"
    return FeatureRefresh(mode, start, candles.height, result.features.height)


def load_features_from(
    con: duckdb.DuckDBPyConnection, symbol: str, start: datetime | None, context_rows: int = 1
) -> pl.DataFrame:
    """One symbol's feature rows from `start` on, with `context_rows` rows before it (all rows if None)."""
    if start is None:
        return load_table_slice(con, "features", symbol)
    naive = start.astimezone(timezone.utc).replace(tzinfo=None)
    frame = con.execute(
        """
        SELECT * FROM (
            SELECT * FROM features WHERE symbol = $symbol AND ts >= $start
            UNION ALL
            (SELECT * FROM features WHERE symbol = $symbol AND ts < $start ORDER BY ts DESC LIMIT $n)
        ) ORDER BY ts
        """,
        {"symbol": symbol, "start": naive, "n": context_rows},
    ).pl()
    return _aware_utc(frame, "ts")


def feature_counts(con: duckdb.DuckDBPyConnection, symbol: str) -> dict:
    """Row, segment and flat-hour counts and the first and last hour of one symbol's features."""
    row = con.execute(
        "SELECT count(*), count(DISTINCT segment), coalesce(sum(is_flat), 0)::BIGINT, min(ts), max(ts) "
        "FROM features WHERE symbol = ?",
        [symbol],
    ).fetchone()
    count = con.execute("SELECT count(*) FROM candles WHERE symbol = ?", [symbol]).fetchone()
    assert row is not None and count is not None  # aggregates without GROUP BY return one row
    rows, segments, flat, first, last = row
    candles = count[0]
    return {
        "candles": int(candles),
        "feature_rows": int(rows),
        "warmup_rows_left_out": int(candles) - int(rows),
        "segments": int(segments),
        "flat_hours": int(flat),
        "first_hour": first.replace(tzinfo=timezone.utc).isoformat() if first else "none",
        "last_hour": last.replace(tzinfo=timezone.utc).isoformat() if last else "none",
    }


SERVED_COLUMNS = (
    "symbol",
    "forecast_hour",
    "as_of_candle",
    "served_at",
    "model",
    "checkpoint_sha256",
    "return_pct",
    "lo80_pct",
    "hi80_pct",
    "lo95_pct",
    "hi95_pct",
    "p_down",
    "p_stable",
    "p_up",
    "direction_threshold_pct",
    "conformal_state",
    "sd_pct",
)


def append_served_forecast(con: duckdb.DuckDBPyConnection, row: dict) -> bool:
    """Append one served forecast to `served_forecasts` (keys: SERVED_COLUMNS; times aware UTC). Append-only: the
    first forecast served for a (symbol, forecast hour) stays, a rerun on the same hour adds nothing. Returns
    whether the row was new."""
    ensure(con, "served_forecasts")
    missing = [c for c in SERVED_COLUMNS if c not in row]
    if missing:
        raise ValueError(f"served_forecasts: the row lacks {missing}; pass every column of SERVED_COLUMNS")
    values = [
        v.astimezone(timezone.utc).replace(tzinfo=None) if isinstance(v, datetime) else v
        for v in (row[c] for c in SERVED_COLUMNS)
    ]
    placeholders = ", ".join("?" for _ in SERVED_COLUMNS)
    inserted = con.execute(
        f"INSERT OR IGNORE INTO served_forecasts ({', '.join(SERVED_COLUMNS)}) VALUES ({placeholders}) RETURNING 1",
        values,
    ).fetchall()
    return bool(inserted)


def load_served_forecasts(con: duckdb.DuckDBPyConnection, symbol: str) -> pl.DataFrame:
    """Every forecast served for `symbol`, by forecast hour (times aware UTC); empty before the first."""
    ensure(con, "served_forecasts")
    frame = con.execute("SELECT * FROM served_forecasts WHERE symbol = ? ORDER BY forecast_hour", [symbol]).pl()
    return _aware_utc(frame, "forecast_hour", "as_of_candle", "served_at")
