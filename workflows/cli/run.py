"""`workflows run` (a file, landed candles or the exchange, to the report) and `workflows fetch`."""

import sys
from typing import TYPE_CHECKING

from workflows.cli.instance import open_instance
from workflows.cli.periods import analysis_ops, backfill_periods, profiles_line
from workflows.cli.runs import failure_messages, metadata_of, run_for_symbol, summary
from workflows.cli.symbols import file_symbol, landed_symbols, no_candles, only_landed, parse_symbol
from workflows.settings import DataPaths, dagster_home

if TYPE_CHECKING:
    from workflows.defs.assets_data import CandlesConfig


def cmd_run(args) -> int:
    """One symbol from a file, from candles already landed, or from the exchange: land (unless landed), train
    the models of each monthly forecast period and log their forecasts, evaluate the log, analyse attention and
    report."""
    import time

    from workflows.defs.assets_data import CandlesConfig
    from workflows.ml.profiles import kind_profiles

    started = time.perf_counter()
    paths = DataPaths.resolve(args.data_dir).ensure()
    profiles = kind_profiles(args.profile)
    source: CandlesConfig | None
    if args.file:
        found = file_symbol(args)
        if found is None:
            return 2
        file, symbol = found
        source = CandlesConfig(source="files", files=[str(file)])
        origin = f"from {file.name}"
    elif args.symbol or not args.exchange:
        symbol = parse_symbol(args.symbol) if args.symbol else only_landed(paths)
        if symbol is None:
            return 2
        if args.exchange:
            source = exchange_config(args)
            origin = f"from the exchange ({args.exchange_url}, {args.days} days on a first fetch)"
        else:
            landed = landed_symbols(paths)
            if not landed.get(symbol):
                return no_candles(symbol, paths, landed)
            source, origin = None, f"from its {landed[symbol]:,} landed hours"
    else:
        print("--exchange needs --symbol S", file=sys.stderr)
        return 2
    instance = open_instance()
    print(f"data folder: {paths.root}; Dagster instance: {dagster_home()}")
    print(
        f"{symbol} {origin}, {profiles_line(profiles)}: "
        + ("" if source is None else "land, ")
        + "features, the monthly forecast periods' models and forecasts, evaluate the pooled log, analyse attention, "
        "report"
    )
    landed = run_for_symbol(instance, symbol, source, "ingest", None, args.verbose)
    if not landed.success and source is not None and source.source == "exchange":
        return exchange_failure(landed, symbol, args)
    if not landed.success:
        return summary(landed, paths, symbol, started, "run")
    if backfill_periods(instance, symbol, paths, profiles, args) is None:
        return 1
    result = run_for_symbol(instance, symbol, None, "pipeline", analysis_ops(args), args.verbose)
    return summary(result, paths, symbol, started, "run", landed)


def exchange_config(args) -> "CandlesConfig":
    from workflows.defs.assets_data import CandlesConfig

    return CandlesConfig(
        source="exchange", days=args.days, exchange_url=args.exchange_url, exchange_retries=args.retries
    )


def exchange_failure(result, symbol: str, args) -> int:
    messages = " ".join(failure_messages(result))
    if "Invalid symbol" in messages:
        print(f"unknown symbol {symbol} on the exchange ({args.exchange_url}): {messages}", file=sys.stderr)
    elif "network error" in messages or "gave up" in messages:
        print(
            f"offline: could not reach the exchange at {args.exchange_url} ({messages}). Nothing was written. "
            "Without a network, land a candle file (`workflows run FILE`) or try `workflows demo`.",
            file=sys.stderr,
        )
    else:
        print(f"fetching {symbol} failed (run {result.run_id}): {messages}", file=sys.stderr)
    return 1


def cmd_fetch(args) -> int:
    """Closed hourly candles from the exchange into the warehouse (through Dagster), then the features."""
    paths = DataPaths.resolve(args.data_dir).ensure()
    symbol = parse_symbol(args.symbol)
    instance = open_instance()
    print(f"{symbol}: fetching closed hourly candles from {args.exchange_url} ({args.days} days on a first fetch)")
    result = run_for_symbol(instance, symbol, exchange_config(args), "ingest", None, args.verbose)
    if not result.success:
        return exchange_failure(result, symbol, args)
    meta = metadata_of(result, "candles")
    print(
        f"{symbol}: {meta.get('dagster/row_count', '?')} hours in {paths.warehouse} (run {result.run_id}); "
        f"next: `workflows run --symbol {symbol}` or `workflows reproduce --symbol {symbol}`"
    )
    return 0
