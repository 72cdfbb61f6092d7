"""The DuckDB warehouse: explicit SQL, idempotent writes, one transaction per write.

Times are stored as naive `TIMESTAMP` holding UTC (no session time-zone can shift
them) and come back as polars `Datetime("us", "UTC")`. Every write of a symbol's
slice happens inside one transaction, so a crash leaves either all or none of it.
"""

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import polars as pl

from workflows.features import FEATURE_COLUMNS
from workflows.ml.windows import history_version, select_history
from workflows.sources.candles import CANDLE_COLUMNS, CANDLE_SCHEMA, VALUE_COLUMNS

DDL = """
CREATE TABLE IF NOT EXISTS candles (
    symbol      VARCHAR   NOT NULL,
    ts          TIMESTAMP NOT NULL,
    open        DOUBLE    NOT NULL,
    high        DOUBLE    NOT NULL,
    low         DOUBLE    NOT NULL,
    close       DOUBLE    NOT NULL,
    volume      DOUBLE    NOT NULL,
    source      VARCHAR   NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    PRIMARY KEY (symbol, ts)
);
CREATE TABLE IF NOT EXISTS candles_rejected (
    file        VARCHAR   NOT NULL,
    line        BIGINT,
    symbol      VARCHAR,
    ts          TIMESTAMP,
    reason      VARCHAR   NOT NULL,
    raw         VARCHAR,
    rejected_at TIMESTAMP NOT NULL
);
"""


@dataclass(frozen=True)
class UpsertStats:
    inserted: int
    updated: int
    unchanged: int


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


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
        con.execute("BEGIN TRANSACTION")
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
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("staged_candles")
    return UpsertStats(int(inserted), int(updated), candles.height - int(inserted) - int(updated))


def record_rejections(
    con: duckdb.DuckDBPyConnection, file: str, rejected: pl.DataFrame, symbol: str | None = None
) -> int:
    """Replace the rejections recorded for `file` (and `symbol`, if given) by `rejected`."""
    ensure_schema(con)
    staged = _naive_utc(rejected, "ts").with_columns(file=pl.lit(file), rejected_at=pl.lit(_now()))
    staged = staged.select("file", "line", "symbol", "ts", "reason", "raw", "rejected_at")
    con.register("staged_rejected", staged)
    try:
        con.execute("BEGIN TRANSACTION")
        if symbol is None:
            con.execute("DELETE FROM candles_rejected WHERE file = ?", [file])
        else:
            con.execute(
                "DELETE FROM candles_rejected WHERE file = ? AND (symbol = ? OR symbol IS NULL)", [file, symbol]
            )
        con.execute("INSERT INTO candles_rejected SELECT * FROM staged_rejected")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("staged_rejected")
    return rejected.height


def load_candles(con: duckdb.DuckDBPyConnection, symbol: str) -> pl.DataFrame:
    """One symbol's candles in time order: never another symbol's rows."""
    ensure_schema(con)
    frame = con.execute(f"SELECT {', '.join(CANDLE_COLUMNS)} FROM candles WHERE symbol = ? ORDER BY ts", [symbol]).pl()
    return _aware_utc(frame, "ts").cast(CANDLE_SCHEMA)


def load_rejected(con: duckdb.DuckDBPyConnection, symbol: str | None = None) -> pl.DataFrame:
    ensure_schema(con)
    if symbol is None:
        frame = con.execute("SELECT * FROM candles_rejected ORDER BY file, line").pl()
    else:
        frame = con.execute("SELECT * FROM candles_rejected WHERE symbol = ? ORDER BY file, line", [symbol]).pl()
    return _aware_utc(frame, "ts", "rejected_at")


def replace_table_slice(con: duckdb.DuckDBPyConnection, table: str, symbol: str, frame: pl.DataFrame, ddl: str) -> None:
    """Replace one symbol's rows of `table` by `frame`, atomically (delete + insert)."""
    con.execute(ddl)
    staged = _naive_utc(frame, *[c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])
    con.register("staged_slice", staged)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"DELETE FROM {table} WHERE symbol = ?", [symbol])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged_slice")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("staged_slice")


def load_table_slice(con: duckdb.DuckDBPyConnection, table: str, symbol: str) -> pl.DataFrame:
    frame = con.execute(f"SELECT * FROM {table} WHERE symbol = ? ORDER BY ts", [symbol]).pl()
    return _aware_utc(frame, *[c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])


def load_features(
    con: duckdb.DuckDBPyConnection, symbol: str, history_days: int | None = None
) -> tuple[pl.DataFrame, str]:
    """One symbol's feature rows (the last `history_days` days; None or 0: all) and their data version."""
    table = select_history(load_table_slice(con, "features", symbol), history_days)
    version = slice_fingerprint(con, "features", symbol, ["ts", *FEATURE_COLUMNS])
    return table, history_version(version, history_days)


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
