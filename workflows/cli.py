"""Headless commands: `workflows ingest`, `workflows demo` and `workflows run FILE`.

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
    """The instance in $DAGSTER_HOME (default: the project's dagster_home/).

    Two commands started at once on a fresh home would both create the SQLite tables
    and one would fail ("table ... already exists"): creation is serialised by a lock."""
    import fcntl

    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        # touch every storage so that its tables exist before the lock is released
        instance.get_runs(limit=1)
        instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1
        )
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
    return instance


def run_for_symbol(instance, symbol: str, candles_config: dict, job_name: str = "ingest", ops: dict | None = None):
    """Run one of the Definitions' jobs for one symbol; returns the Dagster result."""
    from workflows.definitions import defs
    from workflows.defs.partitions import symbols_partitions

    instance.add_dynamic_partitions(symbols_partitions.name, [symbol])
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        run_config={"ops": {"candles": {"config": candles_config}, **(ops or {})}},
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
        print(
            f"{len(failures)} file(s) quarantined, {len(scan.refused)} refused: see {paths.quarantine}", file=sys.stderr
        )
    return 1 if failed_symbols else 0


def _model_ops(profile: str, args) -> dict:
    from workflows.ml.profiles import MODEL_KINDS

    ops = {f"{kind}_model": {"config": {"profile": profile}} for kind in MODEL_KINDS}
    evaluation = {
        k: v
        for k, v in (
            ("walk_forward_folds", args.folds),
            ("walk_forward_fold_days", args.fold_days),
            ("walk_forward_train_days", args.train_days),
            ("walk_forward_min_train_days", args.min_train_days),
        )
        if v is not None
    }
    if evaluation:
        ops["evaluation"] = {"config": evaluation}
    return ops


def cmd_demo(args) -> int:
    import time

    from workflows.ml.profiles import resolve_profile

    started = time.perf_counter()
    paths = DataPaths.resolve(args.data_dir).ensure()
    profile = resolve_profile(args.profile)
    instance = _instance()
    print(f"data folder: {paths.root}")
    print(f"SYNTHETIC demo: {args.days} days of hourly {args.symbol} candles (seed {args.seed}), profile '{profile}'")
    result = run_for_symbol(
        instance,
        args.symbol,
        {"source": "synthetic", "days": args.days, "seed": args.seed},
        "pipeline",
        _model_ops(profile, args),
    )
    return _summary(result, paths, args.symbol, started, "demo")


def cmd_run(args) -> int:
    """Land one candle file and run every model, the evaluation, the analysis and the report on it."""
    import time

    from workflows.ml.profiles import resolve_profile
    from workflows.sources.files import read_candle_file

    started = time.perf_counter()
    paths = DataPaths.resolve(args.data_dir).ensure()
    profile = resolve_profile(args.profile)
    file = Path(args.file).expanduser().resolve()
    if not file.is_file():
        print(f"no such file: {file}", file=sys.stderr)
        return 2
    symbols = args.symbol and [args.symbol] or read_candle_file(file).symbols
    if len(symbols) != 1:
        print(
            f"{file.name} holds {len(symbols)} symbols ({', '.join(symbols) or 'none'}): name one with --symbol",
            file=sys.stderr,
        )
        return 2
    symbol = symbols[0]
    instance = _instance()
    print(f"data folder: {paths.root}")
    print(
        f"{symbol} from {file.name}, profile '{profile}': land, train five models, evaluate (walk-forward when the "
        "history allows), analyse attention, report"
    )
    result = run_for_symbol(
        instance, symbol, {"source": "files", "files": [str(file)]}, "pipeline", _model_ops(profile, args)
    )
    return _summary(result, paths, symbol, started, "run")


def _summary(result, paths: DataPaths, symbol: str, started: float, what: str) -> int:
    import time

    from workflows.ml.profiles import MODEL_KINDS

    if not result.success:
        print(f"{what} run {result.run_id} failed; see `make ui` for its logs", file=sys.stderr)
        return 1
    for key in ("candles", "features"):
        meta = _metadata(result, key)
        print(f"  {key}: {meta.get('dagster/row_count', '?')} rows")
    print(f"  {'model':<16} {'params':>9} {'epochs':>6} {'val skill vs zero':>18} {'device':>6} {'wall s':>7}")
    for kind in MODEL_KINDS:
        meta = _metadata(result, f"{kind}_model")
        print(
            f"  {kind:<16} {meta.get('parameters', 0):>9,} {meta.get('epochs_run', 0):>6} "
            f"{meta.get('val_skill_vs_zero', float('nan')):>+18.4f} {meta.get('device', '?'):>6} "
            f"{meta.get('wall_s', 0):>7.1f}"
        )
    report_dir = paths.reports / symbol
    report = report_dir / "attention_report.md"
    summary = report.read_text().split("## Summary", 1)[1].split("\n## ", 1)[0].strip() if report.exists() else ""
    print("\nSummary (from the report):")
    for line in summary.splitlines():
        print("  " + line.replace("**", ""))
    print(f"\nreport: {report}")
    for png in sorted(report_dir.glob("*.png")):
        print(f"figure: {png}")
    print(
        f"{what} run {result.run_id} succeeded in {time.perf_counter() - started:.0f} s; warehouse: {paths.warehouse}"
    )
    print("browse it with `make ui` (http://127.0.0.1:3000)")
    return 0


def cmd_pools(args) -> int:
    """Size the instance's concurrency pools to this machine: `gpu` follows the devices
    (or the configured CPU trainings), `duckdb` stays at one writer."""
    import subprocess

    from workflows.ml.placement import machine_plan

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))
    plan = machine_plan(cpu_slots=args.cpu_trainings)
    limits = {"gpu": plan.training_slots, "duckdb": 1}
    print(f"{plan.describe()}; DAGSTER_HOME={os.environ['DAGSTER_HOME']}")
    for pool, limit in limits.items():
        done = subprocess.run(
            [sys.executable, "-m", "dagster", "instance", "concurrency", "set", pool, str(limit)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            print(f"could not set pool {pool} to {limit}: {done.stderr.strip()}", file=sys.stderr)
            return done.returncode
        print(f"pool {pool}: limit {limit}")
    return 0


def _metadata(result, node: str) -> dict:
    mats = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mats[-1].metadata.items()} if mats else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workflows", description=__doc__)
    parser.add_argument("--data-dir", default=None, help="runtime data root (default: $WORKFLOWS_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="land every file in <data>/incoming through Dagster")
    demo = sub.add_parser("demo", help="run the pipeline offline on synthetic candles")
    demo.add_argument("--symbol", default="BTCUSDT")
    demo.add_argument("--days", type=int, default=90)
    demo.add_argument("--seed", type=int, default=7)
    run = sub.add_parser("run", help="land one candle file, then models, evaluation, analysis and report")
    run.add_argument("file", help="a candle file (CryptoDataDownload, Binance klines, generic OHLCV; CSV or Parquet)")
    run.add_argument("--symbol", default=None, help="the symbol, when the file holds several")
    for p in (demo, run):
        p.add_argument("--profile", default=None, help="ci | cpu | full (default: $WORKFLOWS_PROFILE or cpu)")
        p.add_argument("--folds", type=int, default=None, help="walk-forward test folds (default 4; 0 = one split)")
        p.add_argument("--fold-days", type=int, default=None, help="days per walk-forward fold (default 100)")
        p.add_argument("--train-days", type=int, default=None, help="most training days per fold (default 365)")
        p.add_argument(
            "--min-train-days",
            type=int,
            default=None,
            help="fewest training days before the first fold (default 180); less history: one split",
        )
    pools = sub.add_parser("pools", help="size the gpu pool to this machine's devices (duckdb stays at 1)")
    pools.add_argument(
        "--cpu-trainings", type=int, default=None, help="CPU only: trainings side by side (default: cores / 4)"
    )
    args = parser.parse_args(argv)
    handlers = {"ingest": cmd_ingest, "demo": cmd_demo, "run": cmd_run, "pools": cmd_pools}
    try:
        DataPaths.resolve(args.data_dir).ensure()
    except OSError as exc:
        root = DataPaths.resolve(args.data_dir).root
        print(
            f"cannot use the data folder {root}: {exc.strerror or exc}. Set WORKFLOWS_DATA_DIR (or --data-dir) "
            "to a writable folder.",
            file=sys.stderr,
        )
        return 2
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
