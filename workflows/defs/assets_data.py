"""Data assets: `candles` (raw hourly candles in DuckDB) and `features`."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from pydantic import Field

from workflows.data.features import FEATURE_COLUMNS
from workflows.data.ingest import (
    check_input_file,
    land,
    missing_hours,
    move_to_processed,
    move_to_quarantine,
    price_jump,
    unchanged_since_read,
)
from workflows.data.quality import candle_findings, feature_findings
from workflows.data.sources.candles import CANDLE_COLUMNS, CandleSourceError, ReadResult
from workflows.data.sources.exchange import ExchangeClient, default_start, exchange_source
from workflows.data.sources.files import FileChangedError, read_candle_file
from workflows.data.sources.synthetic import SyntheticSpec, synthetic_source
from workflows.data.warehouse import (
    candle_span,
    feature_counts,
    load_candles_from,
    load_features_from,
    refresh_features,
    slice_fingerprint,
)
from workflows.defs.checks import CANDLE_CHECK_SPECS, FEATURE_CHECK_SPECS, to_check_result
from workflows.defs.partitions import EAGER_AFTER_CHECKS, partition_symbol, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.reporting.markdown import counts_to_markdown, frame_to_markdown
from workflows.settings import DataPaths

OWNERS = ["team:forecasting"]


class CandlesConfig(dg.Config):
    source: str = Field(default="synthetic", description="synthetic | files | exchange")
    files: list[str] = Field(default=[], description="Candle files to land (source=files)")
    days: int = Field(default=90, description="Synthetic: days of history; exchange: days on first fetch")
    seed: int = Field(default=7, description="Synthetic: random seed")
    planted_lag: int = Field(
        default=17, description="Synthetic: lag (hours) of the planted dependency (17: off the 24 h daily cycle)"
    )
    planted_strength: float = Field(default=0.25, description="Synthetic: AR coefficient at that lag (0 = noise)")
    exchange_url: str = Field(default="https://api.binance.com", description="Exchange: base URL")
    exchange_retries: int = Field(default=4, description="Exchange: retries per request, with backoff")
    archive: bool = Field(default=False, description="Files: move each landed single-symbol file to processed/")
    full_validation: bool = Field(
        default=False,
        description="Check every stored candle of the symbol, not only the rows this run wrote and the one before "
        "them (e.g. after a rule changed)",
    )


def _read_files(context: dg.AssetExecutionContext, config: CandlesConfig, paths: DataPaths) -> list[ReadResult]:
    """Each file on its own. Files from incoming/ (`archive`): one that cannot be read is quarantined with its
    reason and one still being written is left for later, so neither blocks the rest; a file named by hand
    (`workflows run FILE`) that cannot be read fails the run with the reason."""
    results = []
    for name in config.files:
        try:
            path = check_input_file(name, paths, in_incoming=config.archive)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None
        try:
            results.append(read_candle_file(path))
        except FileChangedError as exc:
            context.log.warning(f"left {path.name} in incoming/: {exc}")
        except CandleSourceError as exc:
            if not config.archive:
                raise dg.Failure(str(exc)) from None
            move_to_quarantine(path, paths, str(exc))
            context.log.warning(f"quarantined {path.name}: {exc}")
    return results


def _refuse_jumps(
    context: dg.AssetExecutionContext, config: CandlesConfig, paths: DataPaths, con, results: list[ReadResult]
) -> list[ReadResult]:
    """Files whose prices jump implausibly from the stored candles (`price_jump`) land nothing: quarantined with
    the rule from incoming/, a failed run for a file named by hand."""
    kept = []
    for result in results:
        error = price_jump(con, result) if config.source == "files" else None
        if error is None:
            kept.append(result)
        elif not config.archive:
            raise dg.Failure(str(error))
        else:
            move_to_quarantine({Path(p).name: Path(p) for p in config.files}[result.source], paths, str(error))
            context.log.warning(f"quarantined {result.source}: {error}")
    return kept


def _read_sources(
    context: dg.AssetExecutionContext, config: CandlesConfig, paths: DataPaths, symbol: str, last_ts
) -> list[ReadResult]:
    if config.source == "synthetic":
        spec = SyntheticSpec(
            symbol=symbol, days=config.days, seed=config.seed, lag=config.planted_lag, strength=config.planted_strength
        )
        return [synthetic_source(spec)]
    if config.source == "files":
        return _read_files(context, config, paths)
    if config.source == "exchange":
        try:
            client = ExchangeClient(base_url=config.exchange_url, max_retries=config.exchange_retries)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None
        return [exchange_source(client, symbol, default_start(last_ts, config.days))]
    raise dg.Failure(f"unknown candle source {config.source!r}: use synthetic, files or exchange")


@dg.asset(
    partitions_def=symbols_partitions,
    pool="duckdb",
    group_name="data",
    kinds={"duckdb", "polars"},
    owners=OWNERS,
    code_version="1",
    check_specs=CANDLE_CHECK_SPECS,
    description="Hourly OHLCV candles per symbol in DuckDB `candles`; bad rows in `candles_rejected`.",
)
def candles(context: dg.AssetExecutionContext, config: CandlesConfig, warehouse: WarehouseResource):
    symbol = partition_symbol(context)
    with warehouse.connect() as con:
        last = candle_span(con, symbol).last
    # fetching and parsing happen outside any connection: the file's lock is held only while writing
    results = _read_sources(context, config, warehouse.paths(), symbol, last)
    with warehouse.connect() as con:
        results = _refuse_jumps(context, config, warehouse.paths(), con, results)
        report = land(con, symbol, results)
        # Checks cover the rows written and the stored row before them (the boundary a gap would
        # open at): earlier rows were checked when they were written. First load: every row;
        # nothing written: the last row.
        stored = candle_span(con, symbol)
        start = stored.first if config.full_validation else report.stats.first_changed or stored.last
        checked = load_candles_from(con, symbol, start)
        preview = load_candles_from(con, symbol, stored.last and stored.last - timedelta(hours=4))
        version = slice_fingerprint(con, "candles", symbol, CANDLE_COLUMNS[1:])
    if config.source == "files" and config.archive:
        by_name = {Path(p).name: Path(p) for p in config.files}
        for result in results:
            path = by_name[result.source]
            # multi-symbol files are left for `make ingest`; a file that changed after it was read stays for a rerun
            if result.symbols == [symbol] and unchanged_since_read(path, result):
                move_to_processed(path, warehouse.paths())
    context.log.info(
        f"{symbol}: +{report.stats.inserted} rows, {report.stats.updated} updated, {report.rejected} rejected"
    )
    return dg.MaterializeResult(
        metadata={
            **report.metadata(),
            **missing_hours(stored),
            "rejected_reasons": dg.MetadataValue.md(counts_to_markdown(dict(report.reasons))),
            "preview": dg.MetadataValue.md(frame_to_markdown(preview.tail(5))),
            "rows_checked": checked.height,
            "dagster/row_count": stored.hours,
        },
        check_results=[to_check_result(f) for f in candle_findings(checked, stored)],
        data_version=dg.DataVersion(version),
    )


class FeaturesConfig(dg.Config):
    full_rebuild: bool = Field(
        default=False, description="Recompute every hour of the symbol instead of from the first changed hour on"
    )


@dg.asset(
    partitions_def=symbols_partitions,
    deps=[candles],
    pool="duckdb",
    group_name="data",
    kinds={"duckdb", "polars"},
    owners=OWNERS,
    code_version="2",
    check_specs=FEATURE_CHECK_SPECS,
    automation_condition=EAGER_AFTER_CHECKS,
    description="Per-hour features (returns, volume, volatility, RSI, MACD, Bollinger, calendar) in DuckDB `features`, "
    "extended from the stored indicator state: a new hour costs one hour of work.",
)
def features(context: dg.AssetExecutionContext, config: FeaturesConfig, warehouse: WarehouseResource):
    symbol = partition_symbol(context)
    with warehouse.connect() as con:
        refresh = refresh_features(con, symbol, full=config.full_rebuild)
        # Checks cover the rows written (and the row before them, for contiguity); the
        # rows before were checked when they were written.
        if refresh.mode == "unchanged":
            written = load_features_from(con, symbol, datetime.max.replace(tzinfo=timezone.utc), context_rows=48)
        else:
            written = load_features_from(con, symbol, refresh.rebuilt_from)
        counts = feature_counts(con, symbol)
        version = slice_fingerprint(con, "features", symbol, ["ts", *FEATURE_COLUMNS])
    context.log.info(f"{symbol}: {refresh.mode}, {refresh.hours_recomputed} hours recomputed; {counts}")
    return dg.MaterializeResult(
        metadata={
            **counts,
            "mode": refresh.mode,
            "rebuilt_from": refresh.rebuilt_from.isoformat() if refresh.rebuilt_from else "start",
            "hours_recomputed": refresh.hours_recomputed,
            "columns": ", ".join(FEATURE_COLUMNS),
            "preview": dg.MetadataValue.md(frame_to_markdown(written.tail(5))),
            "dagster/row_count": counts["feature_rows"],
        },
        check_results=[to_check_result(f) for f in feature_findings(written)],
        data_version=dg.DataVersion(version),
    )
