"""Headless commands: `workflows ingest`, `demo`, `run`, `fetch` and `reproduce`.

They run through Dagster against the instance in `$DAGSTER_HOME` (else the project's
dagster_home/), so every run is recorded and visible in the UI (`make ui`). The
terminal shows one line per step with progress bars; `-v` prints Dagster's full
event stream as well.
"""

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from workflows.ml.placement import CPU_SLOTS_ENV
from workflows.settings import (
    WORKERS_ENV,
    DataPaths,
    dagster_home,
    default_env,
    default_sigterm,
    exchange_url,
    requested_profile,
    requested_workers,
    use_dagster_home,
)

if TYPE_CHECKING:
    import dagster as dg

    from workflows.defs.assets_data import CandlesConfig
    from workflows.defs.assets_periods import PeriodTrainingConfig
    from workflows.ml.profiles import Profile


def _instance():
    """The instance in `settings.dagster_home()` ($DAGSTER_HOME when set, else the project's dagster_home/).

    Two commands started at once on a fresh home would both create the SQLite tables
    and one would fail ("table ... already exists"): creation is serialised by a lock."""
    import dagster as dg
    from filelock import FileLock

    home = use_dagster_home()  # the user's $DAGSTER_HOME when set, else ours, exported for Dagster
    with FileLock(home / ".instance.lock"):
        _write_instance_config(home)
        instance = dg.DagsterInstance.get()
        # touch every storage so that its tables exist before the lock is released
        instance.get_runs(limit=1)
        instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1
        )
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
    return instance


def _write_instance_config(home: Path) -> None:
    """A fresh instance folder gets the project's dagster.yaml (SQLite storage under it, telemetry off, the pools'
    default limit), so Dagster never warns that there is none; an existing file is the user's and is kept."""
    from workflows.io import write_text_atomic
    from workflows.settings import PROJECT_ROOT

    target, ours = home / "dagster.yaml", PROJECT_ROOT / "dagster_home" / "dagster.yaml"
    if not target.exists() and ours.exists() and ours.resolve() != target.resolve():
        write_text_atomic(target, ours.read_text())


def _interrupted(run_id: str | None, argv: list[str]) -> int:
    """Ctrl-C: cancel the run in the instance (so the UI does not show it running forever) and free the pool
    slots its steps held, say what was kept
    and the command that resumes, and end the process at once with 130 (128 + SIGINT). The run's worker thread
    is not joined: `os._exit` ends it with the process, before the interpreter's shutdown could abort inside
    torch ("terminate called without an active exception")."""
    import shlex

    import dagster as dg

    print("\ninterrupted (Ctrl-C)", file=sys.stderr)
    if run_id is not None:
        instance = dg.DagsterInstance.get()
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, message="interrupted in the terminal (Ctrl-C)")
        # the pools' slots its steps held (the `gpu` pool is 1 on 2 cores): else the resumed run waits for them
        # forever, as Dagster frees them only for runs it ends itself
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
        ).records
        kept = []
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None or event.asset_key is None:
                continue
            partition = f" [{event.partition}]" if event.partition else ""
            kept.append(f"{event.asset_key.to_user_string()}{partition}")
        print(f"run {run_id} marked CANCELED in the Dagster instance ({dagster_home()})", file=sys.stderr)
        print(
            f"kept: {', '.join(kept) if kept else 'nothing from this run'}; every earlier run's results stand, and "
            "trained period models are reused (nothing already trained is trained again)",
            file=sys.stderr,
        )
    print(f"resume with: workflows {shlex.join(argv)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


# Everything of the `pipeline` job after the candles: what `workflows run --symbol S` runs on landed candles.
def _after_candles() -> list:
    import dagster as dg

    from workflows.ml.profiles import model_kinds

    names = ["features", *(f"{k}_model" for k in model_kinds()), "evaluation", "attention_tensors"]
    names += ["attention_analysis", "report", "production_model", "latest_forecast"]
    return [dg.AssetKey(n) for n in names]


def run_for_symbol(
    instance,
    symbol: str,
    candles_config: "CandlesConfig | None",
    job_name: str = "ingest",
    ops: "Mapping[str, dg.Config] | None" = None,
    verbose: bool = True,
):
    """Run one of the Definitions' jobs for one symbol; returns the Dagster result.

    `candles_config` None: the candles already landed are used (the job's assets after `candles`). `ops`: asset
    name -> its Config (`dg.RunConfig` turns them into the run's config).
    Unless `verbose`, the terminal shows one line per step and progress bars (`workflows.cli.terminal`);
    the full event stream is in the run's event log either way."""
    import dagster as dg

    from workflows.cli.terminal import console_config, execute_with_progress
    from workflows.definitions import defs
    from workflows.defs.partitions import symbols_partitions

    instance.add_dynamic_partitions(symbols_partitions.name, [symbol])
    job = defs.resolve_job_def(job_name)
    ops = dict(ops or {})
    selection = None
    if candles_config is None:
        selection = _after_candles() if job_name != "ingest" else [dg.AssetKey("features")]
    else:
        ops["candles"] = candles_config
    run_config = dg.RunConfig(ops=ops, loggers=console_config(verbose))
    return execute_with_progress(
        lambda run_id: job.execute_in_process(
            run_config=run_config,
            instance=instance,
            partition_key=symbol,
            raise_on_error=False,
            asset_selection=selection,
            run_id=run_id,
        ),
        instance,
        verbose,
    )


def _failure_messages(result) -> list[str]:
    """The root cause of each failed step, one line each (the full traces are in the run's log)."""
    out = []
    for e in result.all_events:
        if e.is_step_failure and e.step_failure_data is not None and e.step_failure_data.error is not None:
            error = e.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            out.append(error.message.strip())
    return out


def _warehouse(paths: DataPaths):
    """A connection to the warehouse as the assets open it (`WarehouseResource.connect`: retried with backoff
    while a sensor or automation run holds the file's lock, closed on exit)."""
    from workflows.defs.resources import WarehouseResource

    return WarehouseResource(data_dir=str(paths.root)).connect()


def landed_symbols(paths: DataPaths) -> dict[str, int]:
    """Symbol -> candle count in the warehouse (empty when there is none yet)."""

    from workflows.data.warehouse import table_exists

    if not paths.warehouse.exists():
        return {}
    with _warehouse(paths) as con:
        if not table_exists(con, "candles"):
            return {}
        return dict(con.execute("SELECT symbol, count(*) FROM candles GROUP BY symbol ORDER BY 1").fetchall())


def _symbol(raw: str) -> str:
    """A trading pair (`BTCUSDT`, `btc/usdt`), or SystemExit(2) with what was expected."""
    from workflows.data.sources.candles import QUOTE_CURRENCIES, normalize_symbol, symbol_from_filename

    try:
        symbol = normalize_symbol(raw)
    except ValueError:
        symbol = ""
    if not symbol or symbol_from_filename(symbol) != symbol:
        print(
            f"unknown symbol {raw!r}: expected a trading pair such as BTCUSDT or ETH/USDT (a base and one of the "
            f"quote currencies {', '.join(QUOTE_CURRENCIES)})",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return symbol


def _only_landed(paths: DataPaths) -> str | None:
    """The one landed symbol when there is exactly one; else say what to do and return None."""
    landed = landed_symbols(paths)
    if len(landed) == 1:
        return next(iter(landed))
    if not landed:
        _no_candles("", paths, landed)
    else:
        print(f"{len(landed)} symbols are landed ({', '.join(landed)}): name one with --symbol", file=sys.stderr)
    return None


def _no_candles(symbol: str, paths: DataPaths, landed: dict[str, int]) -> int:
    have = ", ".join(f"{s} ({n:,} hours)" for s, n in landed.items()) or "none"
    name = symbol or "BTCUSDT"
    print(
        f"no candles for {symbol or 'any symbol'} in {paths.warehouse} (landed symbols: {have}). Land them first "
        "with one of:\n"
        f"  workflows run path/to/{name}-candles.csv      (a file; or `make run FILE=...`)\n"
        f"  workflows fetch {name} --days 365             (from the exchange, online)\n"
        f"  copy files into {paths.incoming} and run `make ingest`",
        file=sys.stderr,
    )
    return 2


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
        with _warehouse(paths) as con:
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

    instance = _instance()
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


# `make demo` without a profile: the two designs the finding is about in the `cpu` profile (the reference
# recipe exactly, and the learning design: `ModelKind.demo_profile`), every other model in `ci`, so that it
# ends within minutes.
DEMO_OTHERS = "ci"
DEMO_DAYS, DEMO_STRENGTH, DEMO_SEED = 120, 0.5, 2
# 120 days hold two monthly forecast periods when a period's models need 45 days of training history.
DEMO_MIN_TRAIN_DAYS = 45
# The demo's attention protocol: fewer deletion draws, windows and bootstrap resamples than a run's (200 matched
# and 100 random draws on up to 1,000 windows, 1,000 resamples). Its bottom line (the learning design's peak
# lift of 30-40x uniform against controls up to about 1.07x; the skill test, which these sizes do not touch) sits
# far from its thresholds; a deletion p-value can still reach 1/51 = 0.02: docs/evaluation.md, "The attention
# protocol's sizes". Not yet re-checked end to end with these sizes (docs/benchmarks.md, issue 28 section).
DEMO_PROTOCOL = {"deletion_draws": 50, "random_draws": 50, "deletion_windows": 250, "resamples": 500}


def _analysis_ops(args, resamples: int | None = None) -> "dict[str, dg.Config]":
    """Config of the analysis: the evaluation and the attention assets pool the periods this command backfilled
    (`resamples`: the attention analysis's bootstrap resamples; None: its default)."""
    from workflows.defs.assets_analysis import EvaluationConfig
    from workflows.defs.assets_attention import AttentionConfig

    periods = getattr(args, "periods", None) or 0
    sizes = {} if resamples is None else {"resamples": resamples}
    ops: dict[str, dg.Config] = {"attention_analysis": AttentionConfig(periods=periods, **sizes)}
    if periods:
        ops |= {"evaluation": EvaluationConfig(periods=periods), "attention_tensors": AttentionConfig(periods=periods)}
    return ops


def _period_ops(profiles: "Mapping[str, Profile]", args) -> "dict[str, PeriodTrainingConfig]":
    """Config of the period models: each kind's profile (`ml.profiles.kind_profiles`) and the period settings."""
    from workflows.defs.assets_periods import PeriodTrainingConfig

    default = PeriodTrainingConfig()

    def given(value: int | None, otherwise: int) -> int:
        return otherwise if value is None else value

    train_days = given(getattr(args, "train_days", None), default.train_days)
    min_train_days = given(_min_train_days(args), default.min_train_days)
    max_epochs = given(getattr(args, "max_epochs", None), default.max_epochs)
    return {
        f"{kind}_period_model": PeriodTrainingConfig(
            profile=profile, train_days=train_days, min_train_days=min_train_days, max_epochs=max_epochs
        )
        for kind, profile in profiles.items()
    }


def _min_train_days(args) -> int | None:
    return getattr(args, "min_train_days", None) or getattr(args, "default_min_train_days", None)


def backfill_periods(
    instance, symbol: str, paths: DataPaths, profiles: "Mapping[str, Profile]", args, protocol: dict | None = None
) -> list[str] | None:
    """The walk-forward: one `forecast_period` run per month the history allows (the newest `--periods`), oldest
    first, so each warm-starts from the one before. Returns the periods (None: a run failed, or the history
    holds no period: then what it lacks is printed)."""

    import dagster as dg

    from workflows.cli.terminal import console_config, execute_with_progress
    from workflows.data.warehouse import load_features
    from workflows.definitions import defs
    from workflows.defs.assets_attention import PeriodAttentionConfig
    from workflows.defs.partitions import period_key
    from workflows.ml.periods import history_shortfall, trainable_periods
    from workflows.ml.windows import WindowSpec

    ops = _period_ops(profiles, args)
    workers = _workers(args)
    cfg = next(iter(ops.values())).period_config()
    with _warehouse(paths) as con:
        table, _ = load_features(con, symbol)
    if not args.periods:
        print(f"{symbol}: --periods 0: no period backfilled; the report reads the periods already stored")
        return []
    periods = trainable_periods(table, WindowSpec(), cfg, max_periods=args.periods)
    if not periods:
        print(f"{symbol}: {history_shortfall(table, WindowSpec(), cfg)}", file=sys.stderr)
        return None
    print(
        f"{symbol}: backfilling {len(periods)} monthly forecast periods, {periods[0]} to {periods[-1]}"
        + (f"; up to {workers} steps side by side" if workers > 1 else "")
    )
    job = defs.resolve_job_def("forecast_period")
    if workers > 1:  # each training claims one of `workers` CPU slots, with its share of the cores
        default_env(CPU_SLOTS_ENV, str(workers))
    attention = {"period_attention": PeriodAttentionConfig(**protocol)} if protocol else {}
    run_config = dg.RunConfig(ops={**ops, **attention}, loggers=console_config(args.verbose))
    for i, period in enumerate(periods, start=1):
        print(f"period {period} ({i}/{len(periods)}): models (trained once, warm-started) and forecasts")
        key = period_key(symbol, period.key)
        result = execute_with_progress(
            (lambda ref, key=key: execute_parallel(instance, key, run_config, workers, ref))
            if workers > 1
            else lambda ref, key=key: job.execute_in_process(
                run_config=run_config, instance=instance, partition_key=key, raise_on_error=False, run_id=ref
            ),
            instance,
            args.verbose,
        )
        if not result.success:
            print(
                f"period {period}: run {result.run_id} failed: {' '.join(_failure_messages(result))}", file=sys.stderr
            )
            return None
        trained = [n for n in ops if _metadata(result, n).get("trained") is True]
        added = _metadata(result, "forecasts").get("hours_added", 0)
        print(f"period {period}: {len(trained)} model(s) trained, {added} hours forecast")
    return [p.key for p in periods]


def _workers(args) -> int:
    """`--workers`, else `$WORKFLOWS_WORKERS`, else 1 (every step in this process)."""
    chosen = getattr(args, "workers", None) or requested_workers() or "1"
    if not str(chosen).isdigit() or int(chosen) < 1:
        raise SystemExit(f"{WORKERS_ENV}={chosen!r}: give a whole number of worker processes, at least 1")
    return int(chosen)


def forecast_period_parallel():
    """The `forecast_period_parallel` job, rebuilt by each step's process (`dg.reconstructable`)."""
    from workflows.definitions import defs

    return defs.resolve_job_def("forecast_period_parallel")


def execute_parallel(instance, key, run_config: "dg.RunConfig", workers: int, ref: str):
    """One `forecast_period` partition with its independent steps in up to `workers` processes at once; the run is
    tagged with `ref` so that `execute_with_progress` finds its events."""
    import dagster as dg

    from workflows.cli.terminal import PROGRESS_TAG
    from workflows.defs.partitions import symbol_periods

    job = dg.reconstructable(forecast_period_parallel)
    tags = {**symbol_periods.get_tags_for_partition_key(key), PROGRESS_TAG: ref}
    config = dg.RunConfig(
        ops=run_config.ops,
        resources=run_config.resources,
        loggers=run_config.loggers,
        execution={"config": {"max_concurrent": workers}},
    )
    # execute_job takes the plain mapping (execute_in_process takes RunConfig itself); its events are read by the end
    with dg.execute_job(job, instance, run_config=config.to_config_dict(), tags=tags) as result:
        return result


def cmd_demo(args) -> int:
    import time

    from workflows.defs.assets_data import CandlesConfig
    from workflows.ml.profiles import demo_profiles, kind_profiles

    started = time.perf_counter()
    paths = DataPaths.resolve(args.data_dir).ensure()
    chosen = args.profile or requested_profile()
    profiles = kind_profiles(chosen) if chosen else kind_profiles(DEMO_OTHERS, demo_profiles())
    instance = _instance()
    print(f"data folder: {paths.root}")
    print(
        f"SYNTHETIC demo: {args.days} days of hourly {args.symbol} candles (seed {args.seed}, planted lag "
        f"{args.lag} h, strength {args.strength}), {_profiles_line(profiles)}"
    )
    synthetic = CandlesConfig(
        source="synthetic", days=args.days, seed=args.seed, planted_lag=args.lag, planted_strength=args.strength
    )
    landed = run_for_symbol(instance, args.symbol, synthetic, "ingest", None, args.verbose)
    if not landed.success:
        return _summary(landed, paths, args.symbol, started, "demo")
    args.default_min_train_days = DEMO_MIN_TRAIN_DAYS
    if backfill_periods(instance, args.symbol, paths, profiles, args, DEMO_PROTOCOL) is None:
        return 1
    ops = _analysis_ops(args, resamples=DEMO_PROTOCOL["resamples"])
    result = run_for_symbol(instance, args.symbol, None, "pipeline", ops, args.verbose)
    return _summary(result, paths, args.symbol, started, "demo", landed)


def _file_symbol(args) -> tuple[Path, str] | None:
    """The candle file of `args.file` and its one symbol (`--symbol`, else the file's own); None, with the
    reason printed, when the file is missing or holds several symbols."""
    from workflows.data.sources.files import read_candle_file

    file = Path(args.file).expanduser().resolve()
    if not file.is_file():
        print(f"no such file: {file}", file=sys.stderr)
        return None
    symbols = [_symbol(args.symbol)] if args.symbol else read_candle_file(file).symbols
    if len(symbols) != 1:
        print(
            f"{file.name} holds {len(symbols)} symbols ({', '.join(symbols) or 'none'}): name one with --symbol",
            file=sys.stderr,
        )
        return None
    return file, symbols[0]


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
        found = _file_symbol(args)
        if found is None:
            return 2
        file, symbol = found
        source = CandlesConfig(source="files", files=[str(file)])
        origin = f"from {file.name}"
    elif args.symbol or not args.exchange:
        symbol = _symbol(args.symbol) if args.symbol else _only_landed(paths)
        if symbol is None:
            return 2
        if args.exchange:
            source = _exchange_config(args)
            origin = f"from the exchange ({args.exchange_url}, {args.days} days on a first fetch)"
        else:
            landed = landed_symbols(paths)
            if not landed.get(symbol):
                return _no_candles(symbol, paths, landed)
            source, origin = None, f"from its {landed[symbol]:,} landed hours"
    else:
        print("--exchange needs --symbol S", file=sys.stderr)
        return 2
    instance = _instance()
    print(f"data folder: {paths.root}; Dagster instance: {dagster_home()}")
    print(
        f"{symbol} {origin}, {_profiles_line(profiles)}: "
        + ("" if source is None else "land, ")
        + "features, the monthly forecast periods' models and forecasts, evaluate the pooled log, analyse attention, "
        "report"
    )
    landed = run_for_symbol(instance, symbol, source, "ingest", None, args.verbose)
    if not landed.success and source is not None and source.source == "exchange":
        return _exchange_failure(landed, symbol, args)
    if not landed.success:
        return _summary(landed, paths, symbol, started, "run")
    if backfill_periods(instance, symbol, paths, profiles, args) is None:
        return 1
    result = run_for_symbol(instance, symbol, None, "pipeline", _analysis_ops(args), args.verbose)
    return _summary(result, paths, symbol, started, "run", landed)


def _exchange_config(args) -> "CandlesConfig":
    from workflows.defs.assets_data import CandlesConfig

    return CandlesConfig(
        source="exchange", days=args.days, exchange_url=args.exchange_url, exchange_retries=args.retries
    )


def _profiles_line(profiles: "Mapping[str, Profile]") -> str:
    """The profiles a command trains in: profile 'cpu', or each with its kinds (a twin follows its design)."""
    from workflows.ml.profiles import model_kinds

    kinds_of: dict[str, list[str]] = {}
    for kind in model_kinds():
        kinds_of.setdefault(profiles[kind], []).append(kind)
    if len(kinds_of) == 1:
        return f"profile '{next(iter(kinds_of))}'"
    return "profiles " + ", ".join(f"'{p}' for {' and '.join(kinds)}" for p, kinds in kinds_of.items()) + " (and twins)"


def _exchange_failure(result, symbol: str, args) -> int:
    messages = " ".join(_failure_messages(result))
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
    symbol = _symbol(args.symbol)
    instance = _instance()
    print(f"{symbol}: fetching closed hourly candles from {args.exchange_url} ({args.days} days on a first fetch)")
    result = run_for_symbol(instance, symbol, _exchange_config(args), "ingest", None, args.verbose)
    if not result.success:
        return _exchange_failure(result, symbol, args)
    meta = _metadata(result, "candles")
    print(
        f"{symbol}: {meta.get('dagster/row_count', '?')} hours in {paths.warehouse} (run {result.run_id}); "
        f"next: `workflows run --symbol {symbol}` or `workflows reproduce --symbol {symbol}`"
    )
    return 0


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
        found = _file_symbol(args)
        if found is None:
            return 2
        file, symbol = found
        source = CandlesConfig(source="files", files=[str(file)])
    elif args.synthetic:
        symbol = _symbol(args.symbol or "BTCUSDT")
        if landed.get(symbol) and _sources(paths, symbol) - {"synthetic"}:
            print(
                f"{symbol} holds landed market candles; a synthetic run would mix with them: pick another "
                "--symbol (e.g. SYNTHUSDT)",
                file=sys.stderr,
            )
            return 2
        source = CandlesConfig(source="synthetic", days=args.days + 3, seed=args.seed)  # + the features' warm-up
    else:
        symbol = _symbol(args.symbol) if args.symbol else _only_landed(paths)
        if symbol is None:
            return 2
        if not landed.get(symbol):
            return _no_candles(symbol, paths, landed)
    if source is not None:
        instance = _instance()
        print(f"landing {symbol} through Dagster (run shows in `make ui`)")
        result = run_for_symbol(instance, symbol, source, "ingest", None, args.verbose)
        if not result.success:
            print(
                f"landing {symbol} failed (run {result.run_id}): {' '.join(_failure_messages(result))}", file=sys.stderr
            )
            return 1

    with _warehouse(paths) as con:
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


def _sources(paths: DataPaths, symbol: str) -> set[str]:

    from workflows.data.warehouse import candle_sources

    with _warehouse(paths) as con:
        return {s.split(":")[0] for s in candle_sources(con, symbol)}


def _summary_lines(result) -> list[str]:
    """The report's bottom line and summary sentences, from the run's typed results."""
    from workflows.reporting.report import bottom_line, summary_sentences

    ev = result.output_for_node("evaluation")
    analyses = result.output_for_node("attention_analysis")
    return [bottom_line(ev), *(f"- {s}" for s in summary_sentences(ev, analyses))]


def _summary(result, paths: DataPaths, symbol: str, started: float, what: str, landed=None) -> int:
    import time

    from workflows.ml.profiles import model_kinds

    if not result.success:
        print(f"{what} run {result.run_id} failed; see `make ui` for its logs", file=sys.stderr)
        return 1
    for key in ("candles", "features"):
        meta = _metadata(result, key) or (_metadata(landed, key) if landed is not None else {})
        print(f"  {key}: {meta.get('dagster/row_count', '?')} rows")
    print(f"  {'model':<16} {'params':>9} {'epochs':>6} {'val skill vs zero':>18} {'device':>6} {'wall s':>7}")
    for kind in model_kinds():
        meta = _metadata(result, f"{kind}_model")
        print(
            f"  {kind:<16} {meta.get('parameters', 0):>9,} {meta.get('epochs_run', 0):>6} "
            f"{meta.get('val_skill_vs_zero', float('nan')):>+18.4f} {meta.get('device', '?'):>6} "
            f"{meta.get('wall_s', 0):>7.1f}"
        )
    report_dir = paths.reports / symbol
    report = report_dir / "attention_report.md"
    print("\nSummary (as in the report):")
    for line in _summary_lines(result):
        print("  " + line.replace("**", ""))
    gate = _metadata(result, "production_model")
    if gate:
        verdict = "PROMOTED" if gate.get("promoted") else "REFUSED"
        print(f"\npromotion gate: {verdict} ({gate.get('reason', '')}); serving: {gate.get('serving', '?')}")
    served = _metadata(result, "latest_forecast")
    if served.get("freshness"):  # when it was made, for which hour; stale: when forecasting can resume
        print(f"served: {served['freshness']}")
    print(f"\nreport: {report}")
    if gate.get("record"):
        print(f"gate decision: {gate['record']}")
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

    home = use_dagster_home()  # `dagster instance concurrency` (a subprocess) reads it
    plan = machine_plan(cpu_slots=args.cpu_trainings)
    limits = {"gpu": plan.training_slots, "duckdb": 1}
    print(f"{plan.describe()}; DAGSTER_HOME={home}")
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


def cmd_remove_source(args) -> int:
    """Take one source file's rows out of a symbol (e.g. a file that should never have landed), then run the
    symbol's candles (checking every stored hour again) and features."""

    from workflows.data.warehouse import remove_source

    symbol = _symbol(args.symbol)
    source = Path(args.file).name  # candles record the file's name, not its folder
    paths = DataPaths.resolve(args.data_dir).ensure()
    if not paths.warehouse.exists():
        return _no_candles(symbol, paths, {})
    with _warehouse(paths) as con:
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
        _instance(), symbol, CandlesConfig(source="files", files=[], full_validation=True), verbose=args.verbose
    )
    print(
        f"{symbol}: candles re-checked and features rebuilt: run {result.run_id} {'ok' if result.success else 'FAILED'}"
    )
    for message in [] if result.success else _failure_messages(result):
        print(f"  {message}", file=sys.stderr)
    return 0 if result.success else 1


def cmd_doctor(args) -> int:
    """What this environment runs: Python, torch's build and device, the training plan, the folders."""
    import platform

    import dagster
    import duckdb
    import polars

    from workflows.ml.placement import machine_plan, torch_build

    build = torch_build()
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    print(build.describe())
    print(f"training plan: {machine_plan().describe()}")
    print(f"dagster {dagster.__version__}, duckdb {duckdb.__version__}, polars {polars.__version__}")
    print(f"DAGSTER_HOME={dagster_home()}")
    print(f"data folder: {DataPaths.resolve(args.data_dir).root}")
    return 0


def _metadata(result, node: str) -> dict:
    mats = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mats[-1].metadata.items()} if mats else {}


def main(argv: list[str] | None = None) -> int:
    from workflows.data.sources.exchange import DEFAULT_BASE_URL

    default_sigterm()  # else each step's log capture waits a minute (`settings.default_sigterm`)

    exchange = exchange_url(DEFAULT_BASE_URL)
    parser = argparse.ArgumentParser(prog="workflows", description=__doc__)
    parser.add_argument("--data-dir", default=None, help="runtime data root (default: $WORKFLOWS_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="land every file in <data>/incoming through Dagster")
    demo = sub.add_parser("demo", help="run the pipeline offline on synthetic candles")
    demo.add_argument("--symbol", default="BTCUSDT")
    demo.add_argument("--days", type=int, default=DEMO_DAYS)
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.add_argument("--lag", type=int, default=17, help="planted lag in hours (default 17)")
    demo.add_argument(
        "--strength",
        type=float,
        default=DEMO_STRENGTH,
        help=f"planted AR coefficient (default {DEMO_STRENGTH}; 0 = noise)",
    )
    run = sub.add_parser(
        "run", help="one symbol (a file, landed candles, or the exchange) to models, evaluation, analysis and report"
    )
    run.add_argument(
        "file", nargs="?", help="a candle file (CryptoDataDownload, Binance klines, generic OHLCV; CSV or Parquet)"
    )
    run.add_argument(
        "--symbol", default=None, help="the symbol: of landed candles (no FILE), or when FILE holds several"
    )
    run.add_argument("--exchange", action="store_true", help="with --symbol: fetch new candles from the exchange first")
    fetch = sub.add_parser("fetch", help="closed hourly candles from the exchange (Binance) into the warehouse")
    fetch.add_argument("symbol")
    for p in (run, fetch):
        p.add_argument("--days", type=int, default=365, help="exchange: days to fetch when nothing is stored yet")
        p.add_argument("--exchange-url", default=exchange, help="default: $WORKFLOWS_EXCHANGE_URL or Binance")
        p.add_argument("--retries", type=int, default=4, help="exchange: retries per request (backoff)")
    repro = sub.add_parser("reproduce", help="the original 90-day study, side by side with its published figures")
    repro.add_argument("file", nargs="?", help="a candle file to land first")
    repro.add_argument("--symbol", default=None, help="a landed symbol (or the symbol of FILE / --synthetic)")
    repro.add_argument("--synthetic", action="store_true", help="offline: on synthetic candles")
    repro.add_argument("--days", type=int, default=90, help="the last N days (default 90, as the study)")
    repro.add_argument("--seed", type=int, default=7, help="--synthetic: the generator's seed")
    repro.add_argument("--profile", default=None, help="default cpu: the reference recipe exactly")
    for p in (demo, run):
        p.add_argument("--profile", default=None, help="ci | cpu | full (default: $WORKFLOWS_PROFILE or cpu)")
        p.add_argument(
            "--periods",
            type=int,
            default=12,
            help="walk-forward: backfill the newest N monthly forecast periods the history allows (default 12; "
            "0: none, report on the periods already stored)",
        )
        p.add_argument("--train-days", type=int, default=None, help="most training days per period (default 365)")
        p.add_argument(
            "--max-epochs",
            type=int,
            default=None,
            help="cap every period training's epochs (default: the profile's); for quick looks, not for evidence",
        )
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help=f"a period's independent steps (its models and twins) in up to N processes at once, each training "
            f"with its share of the cores (default ${WORKERS_ENV}, else 1: every step in this process)",
        )
        p.add_argument(
            "--min-train-days",
            type=int,
            default=None,
            help="fewest training days a period needs (default 60; demo 45); a history too short for one period "
            "says how much more it needs",
        )
    remove = sub.add_parser("remove-source", help="take one source file's rows out of a symbol, then re-check it")
    remove.add_argument("symbol")
    remove.add_argument("file", help="the source file's name, as in the candles' `source` column")
    pools = sub.add_parser("pools", help="size the gpu pool to this machine's devices (duckdb stays at 1)")
    pools.add_argument(
        "--cpu-trainings", type=int, default=None, help="CPU only: trainings side by side (default: cores / 4)"
    )
    sub.add_parser("doctor", help="print torch's version, build (CUDA or CPU), device and threads, and the folders")
    for p in (ingest, demo, run, fetch, repro, remove):
        p.add_argument("-v", "--verbose", action="store_true", help="print Dagster's full event stream too")
    args = parser.parse_args(argv)
    handlers = {
        "ingest": cmd_ingest,
        "demo": cmd_demo,
        "run": cmd_run,
        "fetch": cmd_fetch,
        "reproduce": cmd_reproduce,
        "pools": cmd_pools,
        "remove-source": cmd_remove_source,
        "doctor": cmd_doctor,
    }
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
    from workflows.cli.terminal import RunInterrupted

    command = list(sys.argv[1:] if argv is None else argv)
    try:
        return handlers[args.command](args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except RunInterrupted as stop:
        return _interrupted(stop.run_id, command)
    except KeyboardInterrupt:
        return _interrupted(None, command)


if __name__ == "__main__":
    sys.exit(main())
