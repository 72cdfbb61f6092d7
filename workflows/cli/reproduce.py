"""`workflows reproduce`: the original 90-day study, side by side with its published figures."""

import sys

from workflows.cli.instance import open_instance
from workflows.cli.runs import failure_messages, run_for_symbol
from workflows.cli.symbols import (
    file_symbol,
    landed_symbols,
    no_candles,
    only_landed,
    parse_symbol,
    sources_of,
    warehouse,
)
from workflows.settings import DataPaths


def cmd_reproduce(args) -> int:
    """The original study on the last 90 days of one symbol, side by side with its published figures."""
    import time

    from workflows.cli.terminal import epoch_bar
    from workflows.data.warehouse import candle_sources, load_features
    from workflows.defs.assets_data import CandlesConfig
    from workflows.ml.profiles import resolve_profile
    from workflows.reporting.reproduce import REPRODUCE_PROFILE, reproduce

    started = time.perf_counter()
    paths = DataPaths.resolve(args.data_dir).ensure()
    profile = resolve_profile(args.profile or REPRODUCE_PROFILE)
    landed = landed_symbols(paths)
    source: CandlesConfig | None = None
    if args.file:
        found = file_symbol(args)
        if found is None:
            return 2
        file, symbol = found
        source = CandlesConfig(source="files", files=[str(file)])
    elif args.synthetic:
        symbol = parse_symbol(args.symbol or "BTCUSDT")
        if landed.get(symbol) and sources_of(paths, symbol) - {"synthetic"}:
            print(
                f"{symbol} holds landed market candles; a synthetic run would mix with them: pick another "
                "--symbol (e.g. SYNTHUSDT)",
                file=sys.stderr,
            )
            return 2
        source = CandlesConfig(source="synthetic", days=args.days + 3, seed=args.seed)  # + the features' warm-up
    else:
        symbol = parse_symbol(args.symbol) if args.symbol else only_landed(paths)
        if symbol is None:
            return 2
        if not landed.get(symbol):
            return no_candles(symbol, paths, landed)
    if source is not None:
        instance = open_instance()
        print(f"landing {symbol} through Dagster (run shows in `make ui`)")
        result = run_for_symbol(instance, symbol, source, "ingest", None, args.verbose)
        if not result.success:
            print(
                f"landing {symbol} failed (run {result.run_id}): {' '.join(failure_messages(result))}", file=sys.stderr
            )
            return 1

    with warehouse(paths) as con:
        table, version = load_features(con, symbol)
        sources = candle_sources(con, symbol)
    synthetic = any(s.startswith("synthetic") for s in sources)
    note = (
        "SYNTHETIC data: generated candles with a planted dependency, not a market."
        if synthetic
        else f"Data sources: {', '.join(sources)}."
    )
    if profile != REPRODUCE_PROFILE:
        note += f" Profile '{profile}': NOT the reference recipe (that is the '{REPRODUCE_PROFILE}' profile)."
    with epoch_bar("reference_lstm") as callback:
        rep = reproduce(
            table,
            symbol,
            paths.reports / symbol,
            paths.checkpoints / symbol,
            data_version=version,
            note=note,
            days=args.days,
            profile=profile,
            callback=callback,
            log=lambda msg: print(f"  {msg}", flush=True),
        )
    text = rep.files["report"].read_text()
    print()
    print(text.split("\n![", 1)[0].strip())
    print(f"\nreport: {rep.files['report']}\nfigure: {rep.files['figure']}")
    print(f"reproduce finished in {time.perf_counter() - started:.0f} s")
    return 0
