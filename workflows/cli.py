"""Headless commands: `workflows ingest` and `workflows demo`.

Both run through Dagster against the instance in `$DAGSTER_HOME`, so every run is
recorded and visible in the UI (`make ui`).
"""

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

from workflows.settings import PROJECT_ROOT, DataPaths


def _instance():
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def run_for_symbol(instance, symbol: str, candles_config: dict):
    """Materialise candles + features for one symbol; returns the Dagster result."""
    from workflows.definitions import defs
    from workflows.defs.partitions import symbols_partitions

    instance.add_dynamic_partitions(symbols_partitions.name, [symbol])
    job = defs.resolve_job_def("ingest")
    return job.execute_in_process(
        run_config={"ops": {"candles": {"config": candles_config}}},
        instance=instance,
        partition_key=symbol,
        raise_on_error=False,
    )


def cmd_ingest(args) -> int:
    from workflows.ingest import move_to_processed, move_to_quarantine, read_files, scan_incoming

    paths = DataPaths.resolve(args.data_dir).ensure()
    scan = scan_incoming(paths)
    for path, why in scan.refused:
        print(f"refused {path.name}: {why}", file=sys.stderr)
    if not scan.files:
        print(f"no files in {paths.incoming}")
        return 0

    results, failures = read_files(scan.files)
    for path, error in failures:
        target = move_to_quarantine(path, paths, str(error))
        print(f"quarantined {path.name}: {error} -> {target}", file=sys.stderr)

    files_by_symbol: dict[str, list[str]] = defaultdict(list)
    symbols_by_file: dict[str, set[str]] = defaultdict(set)
    for path, result in zip([p for p in scan.files if p not in {f for f, _ in failures}], results):
        symbols = result.symbols or ([] if result.rejected.is_empty() else sorted(set(result.rejected["symbol"].drop_nulls())))
        if not symbols:
            target = move_to_quarantine(path, paths, f"{path.name}: no valid rows: every row was rejected")
            print(f"quarantined {path.name}: no valid rows -> {target}", file=sys.stderr)
            continue
        for symbol in symbols:
            files_by_symbol[symbol].append(str(path))
            symbols_by_file[str(path)].add(symbol)

    instance = _instance()
    failed_symbols = set()
    for symbol, files in sorted(files_by_symbol.items()):
        result = run_for_symbol(instance, symbol, {"source": "files", "files": files})
        status = "ok" if result.success else "FAILED"
        print(f"{symbol}: run {result.run_id} {status} ({len(files)} file(s))")
        if not result.success:
            failed_symbols.add(symbol)

    for file, symbols in symbols_by_file.items():
        if symbols & failed_symbols:
            print(f"kept {Path(file).name} in incoming/: its run failed; fix and rerun `make ingest`", file=sys.stderr)
        else:
            move_to_processed(Path(file), paths)
    if failures or scan.refused:
        print(f"{len(failures)} file(s) quarantined, {len(scan.refused)} refused: see {paths.quarantine}", file=sys.stderr)
    return 1 if failed_symbols else 0


def cmd_demo(args) -> int:
    paths = DataPaths.resolve(args.data_dir).ensure()
    instance = _instance()
    print(f"data folder: {paths.root}")
    print(f"SYNTHETIC demo: {args.days} days of hourly {args.symbol} candles (seed {args.seed})")
    result = run_for_symbol(
        instance, args.symbol, {"source": "synthetic", "days": args.days, "seed": args.seed}
    )
    if not result.success:
        print(f"demo run {result.run_id} failed; see `make ui` for its logs", file=sys.stderr)
        return 1
    for key in ("candles", "features"):
        mats = result.asset_materializations_for_node(key)
        meta = mats[-1].metadata if mats else {}
        rows = meta.get("dagster/row_count")
        print(f"  {key}: {rows.value if rows else '?'} rows")
    print(f"demo run {result.run_id} succeeded; warehouse: {paths.warehouse}")
    print("browse it with `make ui` (http://127.0.0.1:3000)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workflows", description=__doc__)
    parser.add_argument("--data-dir", default=None, help="runtime data root (default: $WORKFLOWS_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="land every file in <data>/incoming through Dagster")
    demo = sub.add_parser("demo", help="run the pipeline offline on synthetic candles")
    demo.add_argument("--symbol", default="BTCUSDT")
    demo.add_argument("--days", type=int, default=90)
    demo.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    handlers = {"ingest": cmd_ingest, "demo": cmd_demo}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
