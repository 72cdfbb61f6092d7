"""Every table of the DuckDB warehouse, defined once: `TABLES` (name -> DDL), `ADDED` (columns added after a
table first shipped, added in place to an older table: its old rows hold NULL there) and `ensure(con, *names)`,
which creates the tables named (and adds the columns an older one lacks). docs/data.md has one row per table
(workflows_tests/unit/test_docs.py reads `TABLES`)."""

import duckdb

from workflows.data.feature_state import NULLABLE_STATE, STATE_SCHEMA
from workflows.data.features import FEATURE_COLUMNS

TABLES: dict[str, str] = {
    "candles": """
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
)""",
    "candles_rejected": """
CREATE TABLE IF NOT EXISTS candles_rejected (
    file        VARCHAR   NOT NULL,
    line        BIGINT,
    symbol      VARCHAR,
    ts          TIMESTAMP,
    reason      VARCHAR   NOT NULL,
    raw         VARCHAR,
    rejected_at TIMESTAMP NOT NULL
)""",
    # The first hour per symbol whose candle was inserted or changed since its features were last refreshed:
    # written with the candles, in the same transaction, so the features asset knows where to start without
    # comparing every hour.
    "candles_changed": """
CREATE TABLE IF NOT EXISTS candles_changed (
    symbol      VARCHAR   PRIMARY KEY,
    first_ts    TIMESTAMP NOT NULL
)""",
    "features": (
        "CREATE TABLE IF NOT EXISTS features ("
        "symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, segment BIGINT NOT NULL, close DOUBLE NOT NULL, "
        + ", ".join(f"{c} DOUBLE NOT NULL" for c in FEATURE_COLUMNS)
        + ", PRIMARY KEY (symbol, ts))"
    ),
    "feature_state": (
        "CREATE TABLE IF NOT EXISTS feature_state (symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, "
        "segment BIGINT NOT NULL, position BIGINT NOT NULL, "
        + ", ".join(f"{c} DOUBLE{'' if c in NULLABLE_STATE else ' NOT NULL'}" for c in list(STATE_SCHEMA)[4:])
        + ", PRIMARY KEY (symbol, ts))"
    ),
    "feature_builds": (
        "CREATE TABLE IF NOT EXISTS feature_builds (symbol VARCHAR PRIMARY KEY, state_version INTEGER NOT NULL, "
        "built_at TIMESTAMP NOT NULL)"
    ),
    "period_models": (
        "CREATE TABLE IF NOT EXISTS period_models (symbol VARCHAR NOT NULL, period VARCHAR NOT NULL, "
        "kind VARCHAR NOT NULL, train_key VARCHAR NOT NULL, path VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, "
        "warm_from VARCHAR, data_version VARCHAR NOT NULL, code_version VARCHAR NOT NULL, profile VARCHAR, "
        "train_lo TIMESTAMP, train_hi TIMESTAMP, val_hi TIMESTAMP, epochs_run INTEGER, wall_s DOUBLE, "
        "period_config VARCHAR, trained_at TIMESTAMP NOT NULL)"
    ),
    "forecast_log": (
        "CREATE TABLE IF NOT EXISTS forecast_log (symbol VARCHAR NOT NULL, period VARCHAR NOT NULL, "
        "name VARCHAR NOT NULL, role VARCHAR NOT NULL, origin_ts TIMESTAMP NOT NULL, target_ts TIMESTAMP NOT NULL, "
        "quantity VARCHAR NOT NULL, value DOUBLE, model_version VARCHAR NOT NULL, code_version VARCHAR NOT NULL, "
        "data_version VARCHAR NOT NULL, written_at TIMESTAMP NOT NULL)"
    ),
    "forecast_periods": (
        "CREATE TABLE IF NOT EXISTS forecast_periods (symbol VARCHAR NOT NULL, period VARCHAR NOT NULL, "
        "test_start VARCHAR, test_end VARCHAR, test_hours INTEGER, train_windows INTEGER, train_start VARCHAR, "
        "train_end VARCHAR, seconds DOUBLE, epochs VARCHAR, models VARCHAR, errors VARCHAR, "
        "code_version VARCHAR NOT NULL, data_version VARCHAR NOT NULL, written_at TIMESTAMP NOT NULL, "
        "forecasters VARCHAR)"
    ),
    # One digest per feature hour a period's stored forecasts read from its first hour on (inputs and targets,
    # every column: the models' features, the returns and segments the targets and baselines use): a correction
    # of any input, inside the period or in the hours after it that its last targets read, is found by comparing
    # these.
    "forecast_inputs": (
        "CREATE TABLE IF NOT EXISTS forecast_inputs (symbol VARCHAR NOT NULL, period VARCHAR NOT NULL, "
        "ts TIMESTAMP NOT NULL, digest BIGINT NOT NULL)"
    ),
    "evaluation": (
        "CREATE TABLE IF NOT EXISTS evaluation (symbol VARCHAR NOT NULL, model VARCHAR NOT NULL, "
        "metric VARCHAR NOT NULL, value DOUBLE, evaluated_at TIMESTAMP NOT NULL)"
    ),
    "attention_summary": (
        "CREATE TABLE IF NOT EXISTS attention_summary (symbol VARCHAR NOT NULL, model VARCHAR NOT NULL, "
        "windows BIGINT, first_window TIMESTAMP, last_window TIMESTAMP, file VARCHAR, "
        "normalised_entropy_median DOUBLE, max_weight_median DOUBLE, top_hour BIGINT, profile_max_lift DOUBLE)"
    ),
    "attention_metrics": (
        "CREATE TABLE IF NOT EXISTS attention_metrics (symbol VARCHAR NOT NULL, model VARCHAR NOT NULL, "
        "metric VARCHAR NOT NULL, median DOUBLE, p25 DOUBLE, p75 DOUBLE)"
    ),
    "served_forecasts": """
CREATE TABLE IF NOT EXISTS served_forecasts (
    symbol VARCHAR NOT NULL,
    forecast_hour TIMESTAMP NOT NULL,
    as_of_candle TIMESTAMP NOT NULL,
    served_at TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    checkpoint_sha256 VARCHAR,
    return_pct DOUBLE NOT NULL,
    lo80_pct DOUBLE,
    hi80_pct DOUBLE,
    lo95_pct DOUBLE,
    hi95_pct DOUBLE,
    p_down DOUBLE,
    p_stable DOUBLE,
    p_up DOUBLE,
    direction_threshold_pct DOUBLE,
    conformal_state VARCHAR,
    sd_pct DOUBLE,
    PRIMARY KEY (symbol, forecast_hour)
)""",
    "forecasts": (
        "CREATE TABLE IF NOT EXISTS forecasts (symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, model VARCHAR, "
        "return_pct DOUBLE, lo80_pct DOUBLE, hi80_pct DOUBLE, p_down DOUBLE, p_stable DOUBLE, p_up DOUBLE, "
        "origin_ts TIMESTAMP, made_at TIMESTAMP, resumes_at TIMESTAMP)"
    ),
}

# Columns added after a table first shipped (column -> type): an older table gains them on its next `ensure`.
ADDED: dict[str, dict[str, str]] = {
    "forecast_periods": {"forecasters": "VARCHAR"},
    "served_forecasts": {"sd_pct": "DOUBLE"},
    "forecasts": {"origin_ts": "TIMESTAMP", "made_at": "TIMESTAMP", "resumes_at": "TIMESTAMP"},
}


def ensure(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Create the tables `names` where missing, and add to an older one the columns of `ADDED` it lacks."""
    for name in names:
        if name not in TABLES:
            raise KeyError(f"no warehouse table `{name}` in workflows/data/tables.py: add its DDL to TABLES there")
        con.execute(TABLES[name])
        add_missing_columns(con, name)


def add_missing_columns(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Add to an existing older table `name` the columns of `ADDED` it lacks (without creating it)."""
    for column, kind in ADDED.get(name, {}).items():
        con.execute(f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {column} {kind}")
