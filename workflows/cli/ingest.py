"""`workflows ingest` (every file in incoming/) and `workflows remove-source`."""

import sys
from collections import defaultdict
from pathlib import Path

from workflows.cli.instance import open_instance
from workflows.cli.runs import failure_messages, run_for_symbol
from workflows.cli.symbols import no_candles, parse_symbol, warehouse
from workflows.settings import DataPaths


def cmd_ingest(args) -> int:
    from workflows.data.ingest import (
        move_to_processed,
        move_to_quarantine,
        price_jump,
        read_files,
        scan_incoming,
        unchanged_since_read,
    )

    paths = DataPaths.resolve(args.data_dir).ensure()
    scan = scan_incoming(paths)
    for path, why in scan.refused:
        print(f"refused {path.name}: {why}", file=sys.stderr)
    if not scan.files:
        print(f"no files in {paths.incoming}")
        return 0

    # each file on its own: one that cannot be read is quarantined with its reason, the others go on
    reads = read_files(scan.files)
    for path, error in reads.failures:
        target = move_to_quarantine(path, paths, str(error))
        print(f"quarantined {path.name}: {error} -> {target}", file=sys.stderr)
    for path, error in reads.pending:
        print(f"left {path.name} in incoming/: {error}", file=sys.stderr)
    if reads.results and paths.warehouse.exists():  # files whose prices jump from the stored candles land nothing
        with warehouse(paths) as con:
            jumps = [(path, result, price_jump(con, result)) for path, result in reads.results]
        for path, _, error in jumps:
            if error is not None:
                target = move_to_quarantine(path, paths, str(error))
                reads.failures.append((path, error))
                print(f"quarantined {path.name}: {error} -> {target}", file=sys.stderr)
        reads.results = [(path, result) for path, result, error in jumps if error is None]

    files_by_symbol: dict[str, list[str]] = defaultdict(list)
    symbols_by_file: dict[str, set[str]] = defaultdict(set)
    read_of = {str(path): result for path, result in reads.results}
    for path, result in reads.results:
        symbols = result.symbols or (
            [] if result.rejected.is_empty() else sorted(set(result.rejected["symbol"].drop_nulls()))
        )
        if not symbols:
            target = move_to_quarantine(path, paths, f"{path.name}: no valid rows: every row was rejected")
            print(f"quarantined {path.name}: no valid rows -> {target}", file=sys.stderr)
            continue
        for symbol in symbols:
            files_by_symbol[symbol].append(str(path))
            symbols_by_file[str(path)].add(symbol)

    from workflows.defs.assets_data import CandlesConfig

    instance = open_instance()
    failed_symbols = set()
    for symbol, files in sorted(files_by_symbol.items()):
        result = run_for_symbol(instance, symbol, CandlesConfig(source="files", files=files), verbose=args.verbose)
        rejected = sum(read_of[f].for_symbol(symbol).rejected.height for f in files)
        status = "FAILED" if not result.success else f"landed, {rejected:,} row(s) REJECTED" if rejected else "ok"
        print(f"{symbol}: run {result.run_id} {status} ({len(files)} file(s))")
        if result.success and rejected:
            print(f"  {symbol}: the rejected rows and their reasons are in table candles_rejected", file=sys.stderr)
        if not result.success:
            failed_symbols.add(symbol)

    for file, symbols in symbols_by_file.items():
        if symbols & failed_symbols:
            print(f"kept {Path(file).name} in incoming/: its run failed; fix and rerun `make ingest`", file=sys.stderr)
        elif not unchanged_since_read(Path(file), read_of[file]):
            print(f"kept {Path(file).name} in incoming/: it changed after it was read; it is read again next time")
        else:
            move_to_processed(Path(file), paths)
    if reads.failures or scan.refused:
        print(
            f"{len(reads.failures)} file(s) quarantined, {len(scan.refused)} refused: see {paths.quarantine}",
            file=sys.stderr,
        )
    return 1 if failed_symbols else 0


def cmd_remove_source(args) -> int:
    """Take one source file's rows out of a symbol (e.g. a file that should never have landed), then run the
    symbol's candles (checking every stored hour again) and features."""

    from workflows.data.warehouse import remove_source

    symbol = parse_symbol(args.symbol)
    source = Path(args.file).name  # candles record the file's name, not its folder
    paths = DataPaths.resolve(args.data_dir).ensure()
    if not paths.warehouse.exists():
        return no_candles(symbol, paths, {})
    with warehouse(paths) as con:
        sources = dict(
            con.execute("SELECT source, count(*) FROM candles WHERE symbol = ? GROUP BY 1", [symbol]).fetchall()
        )
        if source not in sources:
            known = ", ".join(f"{name} ({n:,} hours)" for name, n in sorted(sources.items())) or "none"
            print(f"{symbol} holds no rows from {source!r}; its sources: {known}", file=sys.stderr)
            return 2
        removed, first = remove_source(con, symbol, source)
    print(f"removed {removed:,} rows of {source} from {symbol} (from {first:%Y-%m-%d %H:%M} UTC on)")
    from workflows.defs.assets_data import CandlesConfig

    result = run_for_symbol(
        open_instance(), symbol, CandlesConfig(source="files", files=[], full_validation=True), verbose=args.verbose
    )
    print(
        f"{symbol}: candles re-checked and features rebuilt: run {result.run_id} {'ok' if result.success else 'FAILED'}"
    )
    for message in [] if result.success else failure_messages(result):
        print(f"  {message}", file=sys.stderr)
    return 0 if result.success else 1
