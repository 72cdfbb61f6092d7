"""The monthly forecast periods a command backfills: each period model's Config (its profile, resolved
once, and the period settings), one `forecast_period` run per month, in one process or several."""

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from workflows.cli.runs import failure_messages, metadata_of
from workflows.cli.symbols import warehouse
from workflows.ml.placement import CPU_SLOTS_ENV
from workflows.settings import WORKERS_ENV, DataPaths, default_env, requested_workers

TRAINING_POOL = "gpu"  # the Dagster pool of every training and attention step (`defs/`)

if TYPE_CHECKING:
    import dagster as dg

    from workflows.defs.assets_periods import PeriodTrainingConfig
    from workflows.ml.profiles import Profile


def analysis_ops(args, resamples: int | None = None) -> "dict[str, dg.Config]":
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


def period_ops(profiles: "Mapping[str, Profile]", args) -> "dict[str, PeriodTrainingConfig]":
    """Config of the period models: each kind's profile (`ml.profiles.kind_profiles`) and the period settings."""
    from workflows.defs.assets_periods import PeriodTrainingConfig

    default = PeriodTrainingConfig()

    def given(value: int | None, otherwise: int) -> int:
        return otherwise if value is None else value

    train_days = given(getattr(args, "train_days", None), default.train_days)
    min_train_days = given(min_train_days_of(args), default.min_train_days)
    max_epochs = given(getattr(args, "max_epochs", None), default.max_epochs)
    return {
        f"{kind}_period_model": PeriodTrainingConfig(
            profile=profile, train_days=train_days, min_train_days=min_train_days, max_epochs=max_epochs
        )
        for kind, profile in profiles.items()
    }


def min_train_days_of(args) -> int | None:
    return getattr(args, "min_train_days", None) or getattr(args, "default_min_train_days", None)


def backfill_periods(
    instance, symbol: str, paths: DataPaths, profiles: "Mapping[str, Profile]", args, protocol: dict | None = None
) -> list[str] | None:
    """The walk-forward: one `forecast_period` run per month the history allows (the newest `--periods`), oldest
    first, so each warm-starts from the one before; with several workers each month's attention analysis in a
    run of its own beside the next month's models (`backfill_overlapped`). Returns the periods (None: a run
    failed, or the history holds no period: then what it lacks is printed)."""

    import dagster as dg

    from workflows.cli.terminal import console_config, execute_with_progress
    from workflows.data.warehouse import load_features
    from workflows.definitions import defs
    from workflows.defs.assets_attention import PeriodAttentionConfig
    from workflows.defs.assets_periods import PERIOD_KINDS
    from workflows.defs.partitions import period_key
    from workflows.ml.period_models import registered
    from workflows.ml.periods import history_shortfall, trainable_periods
    from workflows.ml.windows import WindowSpec

    ops = period_ops(profiles, args)
    workers = worker_count(args)
    cfg = next(iter(ops.values())).period_config()
    with warehouse(paths) as con:
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
        + (
            f"; up to {workers} steps side by side, each month's attention analysis beside the next month's models"
            if workers > 1
            else ""
        )
    )
    attention = {"period_attention": PeriodAttentionConfig(**protocol)} if protocol else {}
    job = defs.resolve_job_def("forecast_period")
    run_config = dg.RunConfig(ops={**ops, **attention}, loggers=console_config(args.verbose))

    def in_process(key: str):
        """The month's `forecast_period` run in this process, one step after another."""
        return execute_with_progress(
            lambda ref: job.execute_in_process(
                run_config=run_config, instance=instance, partition_key=key, raise_on_error=False, run_id=ref
            ),
            instance,
            args.verbose,
        )

    months = [(period, period_key(symbol, period.key)) for period in periods]
    if workers > 1:  # each training claims one of `workers` CPU slots, with its share of the cores
        default_env(CPU_SLOTS_ENV, str(workers))
        widen_training_pool(instance, workers)
        with warehouse(paths) as con:
            stored = {p.key for p in periods if all(registered(con, symbol, p.key, k) for k in PERIOD_KINDS)}
        done = backfill_overlapped(instance, months, ops, protocol or {}, workers, args, in_process, stored)
        return [p.key for p in periods] if done else None
    for i, (period, key) in enumerate(months, start=1):
        announce(period, i, len(periods))
        if not month_done(period, in_process(key), ops):
            return None
    return [p.key for p in periods]


def widen_training_pool(instance, workers: int) -> None:
    """Let `workers` training steps run at once: the instance's `gpu` pool (every training and attention step is in
    it) admits one step unless `workflows pools` sized it, which would run a month's steps one after another
    whatever `--workers` says. A limit below `workers` is raised, and the terminal says so (it stays: the
    instance's pools are its configuration, `workflows pools` sizes them to the machine)."""
    storage = instance.event_log_storage
    limit = storage.get_concurrency_info(TRAINING_POOL).limit
    if limit is None:
        limit = instance.get_concurrency_config().pool_config.default_pool_limit
    if limit is not None and limit < workers:
        storage.set_concurrency_slots(TRAINING_POOL, workers)
        print(f"pool {TRAINING_POOL}: limit raised from {limit} to {workers} for --workers {workers}")


def announce(period, i: int, n: int) -> None:
    print(f"period {period} ({i}/{n}): models (trained once, warm-started) and forecasts")


def month_done(period, result, ops: Mapping) -> bool:
    """Say what the month's run did (False: it failed, its root causes printed)."""
    if not result.success:
        print(f"period {period}: run {result.run_id} failed: {' '.join(failure_messages(result))}", file=sys.stderr)
        return False
    trained = [n for n in ops if metadata_of(result, n).get("trained") is True]
    added = metadata_of(result, "forecasts").get("hours_added", 0)
    print(f"period {period}: {len(trained)} model(s) trained, {added} hours forecast")
    return True


def backfill_overlapped(
    instance, months: list, ops: Mapping, protocol: dict, workers: int, args, in_process, stored: set[str]
) -> bool:
    """The months oldest first, each in two runs: its models and forecasts (up to `workers` steps side by side),
    then its attention analysis, which goes on beside the next month's models (`cli/overlap.py`). A month whose
    models are all registered already (`stored`: a rerun, a resumed backfill) runs `in_process` instead: its
    steps reuse what is stored in a fraction of a second each, where a process per step costs seconds. False: a
    run failed. Ctrl-C cancels the analysis in flight too."""
    import dagster as dg

    from workflows.cli.overlap import AttentionInFlight
    from workflows.cli.terminal import RunInterrupted, console_config, execute_with_progress
    from workflows.defs.assets_periods import forecasts, period_model_assets

    steps = [a.key for a in (*period_model_assets, forecasts)]  # `forecast_period` but its attention step
    models = dg.RunConfig(ops=dict(ops), loggers=console_config(args.verbose))
    pending: AttentionInFlight | None = None
    try:
        for i, (period, key) in enumerate(months, start=1):
            announce(period, i, len(months))
            if period.key in stored:  # nothing to train: its analysis too, in this process, after the one in flight
                if pending is not None and not pending.finish(beside_next=False):
                    return False
                pending = None
                if not month_done(period, in_process(key), ops):
                    return False
                continue
            result = execute_with_progress(
                lambda ref, key=key: execute_parallel(instance, key, models, workers, ref, steps),
                instance,
                args.verbose,
            )
            if not month_done(period, result, ops):
                if pending is not None:
                    pending.finish(beside_next=False)  # what it did is said; the backfill stops at the failed month
                return False
            if pending is not None and not pending.finish():
                return False
            pending = AttentionInFlight(instance, key, str(period), protocol)
        return pending is None or pending.finish(beside_next=False)
    except RunInterrupted:
        if pending is not None:
            pending.stop()
        raise


def worker_count(args) -> int:
    """`--workers`, else `$WORKFLOWS_WORKERS`, else 1 (every step in this process)."""
    chosen = getattr(args, "workers", None) or requested_workers() or "1"
    if not str(chosen).isdigit() or int(chosen) < 1:
        raise SystemExit(f"{WORKERS_ENV}={chosen!r}: give a whole number of worker processes, at least 1")
    return int(chosen)


def forecast_period_parallel():
    """The `forecast_period_parallel` job, rebuilt by each step's process (`dg.reconstructable`)."""
    from workflows.definitions import defs

    return defs.resolve_job_def("forecast_period_parallel")


def execute_parallel(instance, key, run_config: "dg.RunConfig", workers: int, ref: str, assets=None):
    """One `forecast_period` partition with its independent steps in up to `workers` processes at once (`assets`:
    only those steps; None: all); the run is tagged with `ref` so that `execute_with_progress` finds its events."""
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
    with dg.execute_job(job, instance, run_config=config.to_config_dict(), tags=tags, asset_selection=assets) as result:
        return result


def profiles_line(profiles: "Mapping[str, Profile]") -> str:
    """The profiles a command trains in: profile 'cpu', or each with its kinds (a twin follows its design)."""
    from workflows.ml.profiles import model_kinds

    kinds_of: dict[str, list[str]] = {}
    for kind in model_kinds():
        kinds_of.setdefault(profiles[kind], []).append(kind)
    if len(kinds_of) == 1:
        return f"profile '{next(iter(kinds_of))}'"
    return "profiles " + ", ".join(f"'{p}' for {' and '.join(kinds)}" for p, kinds in kinds_of.items()) + " (and twins)"
