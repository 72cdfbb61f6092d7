"""`workflows demo`: the pipeline offline on synthetic candles with a planted dependency."""

from workflows.cli.instance import open_instance
from workflows.cli.periods import analysis_ops, backfill_periods, profiles_line
from workflows.cli.runs import run_for_symbol, summary
from workflows.settings import DataPaths, requested_profile

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


def cmd_demo(args) -> int:
    import time

    from workflows.defs.assets_data import CandlesConfig
    from workflows.ml.profiles import demo_profiles, kind_profiles

    started = time.perf_counter()
    paths = DataPaths.resolve(args.data_dir).ensure()
    chosen = args.profile or requested_profile()
    profiles = kind_profiles(chosen) if chosen else kind_profiles(DEMO_OTHERS, demo_profiles())
    instance = open_instance()
    print(f"data folder: {paths.root}")
    print(
        f"SYNTHETIC demo: {args.days} days of hourly {args.symbol} candles (seed {args.seed}, planted lag "
        f"{args.lag} h, strength {args.strength}), {profiles_line(profiles)}"
    )
    synthetic = CandlesConfig(
        source="synthetic", days=args.days, seed=args.seed, planted_lag=args.lag, planted_strength=args.strength
    )
    landed = run_for_symbol(instance, args.symbol, synthetic, "ingest", None, args.verbose)
    if not landed.success:
        return summary(landed, paths, args.symbol, started, "demo")
    args.default_min_train_days = DEMO_MIN_TRAIN_DAYS
    if backfill_periods(instance, args.symbol, paths, profiles, args, DEMO_PROTOCOL) is None:
        return 1
    ops = analysis_ops(args, resamples=DEMO_PROTOCOL["resamples"])
    result = run_for_symbol(instance, args.symbol, None, "pipeline", ops, args.verbose)
    return summary(result, paths, args.symbol, started, "demo", landed)
