"""The volatility recipe's design, chosen on hours before every forecast period (issue 20, item 5).

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.vol_design \
        [--symbol BTCUSDT] [--candidates previous logvar ...] [--seeds 0 1 2] [--epochs N] [--no-write]

On the real export in ../shared/data, every hour used here ends before the first forecast period that the
default `workflows run` backfills (the newest `--periods` 12 monthly periods the history allows,
`workflows.ml.periods.trainable_periods`): no choice is made on an hour the report of record scores.
One fold, built like a forecast period's (`build_fold`):

* design validation ("val" below): window ends from `--val-start` to 24 h before the first forecast
  period, so every target hour is before it;
* early stopping: the `--stop-days` before it (like a period's 14 validation days), with the embargo;
* training: the `--train-days` before that, with the embargo.

Each candidate (`VolatilityDesign`, the `cpu` profile's sizes) is trained with `--seeds` seeds; the
baselines (log-HAR, HAR-X with log volume, seasonal log-HAR, GARCH(1,1)) are fitted on the same training
hours. All are scored by QLIKE on the same validation hours (those every candidate has a window for), at
24 h (the mean variance of the next 24 hours) and 1 h (the squared next return). Results are cached per
run in `--cache` (a rerun skips what is done). Writes a section of docs/benchmarks.md.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import torch

from benchmarks.common import machine, write_section
from workflows.data.features import compute_features
from workflows.data.sources.files import read_candle_file
from workflows.evaluation.baselines import volatility_baselines
from workflows.ml.models import ArchConfig
from workflows.ml.periods import PeriodConfig, trainable_periods
from workflows.ml.profiles import VOLATILITY_DESIGN, VolatilityDesign, profile_sizes, volatility_recipe
from workflows.ml.training import predict, train
from workflows.ml.windows import WindowData, WindowSpec, build_fold, parse_iso_hour
from workflows.stats.losses import qlike_losses

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
KEY = "bench_vol_design"
TITLE = "Volatility model design on validation hours (`benchmarks/vol_design.py`)"
BASELINES = ("log_har", "har_x_volume", "log_har_seasonal", "garch_1_1")
HOURS_PER_DAY = 24

# Candidates, most promising first (the CPU budget may not reach the last ones).
CANDIDATES: dict[str, VolatilityDesign] = {
    "previous": VolatilityDesign(),  # the recipe's design before this benchmark chose one
    "logvar": VolatilityDesign(log_variance=True),
    "logvar_rv": VolatilityDesign(log_variance=True, rv_summaries=True),
    "logvar_rv_hour": VolatilityDesign(log_variance=True, rv_summaries=True, hour_of_day=True),
    "rv": VolatilityDesign(rv_summaries=True),
    "logvar_rv_hour_168h": VolatilityDesign(
        log_variance=True, rv_summaries=True, hour_of_day=True, window=168, scales=(6, 24, 48, 168)
    ),
}


def first_forecast_period(features: pl.DataFrame, periods: int):
    """The oldest of the newest `periods` forecast periods `workflows run` backfills by default."""
    return trainable_periods(features, WindowSpec(), PeriodConfig(), max_periods=periods)[0]


def fold(features: pl.DataFrame, spec: WindowSpec, val_lo: int, val_hi: int, args) -> WindowData:
    """Training, early-stopping and design-validation windows (the fold's `test` split is the design validation)."""
    return build_fold(
        features,
        spec,
        test_start_hour=val_lo,
        test_hours=val_hi - val_lo,
        val_hours=args.stop_days * HOURS_PER_DAY,
        max_train_hours=args.train_days * HOURS_PER_DAY,
    )


def realised(data: WindowData) -> dict[int, np.ndarray]:
    scale = data.scaler.target_scale
    return {24: (data.test.vol.astype(np.float64) * scale) ** 2, 1: data.test.raw_ret.astype(np.float64) ** 2}


def run_candidate(features, design: VolatilityDesign, seed: int, val_lo: int, val_hi: int, args) -> dict:
    recipe = volatility_recipe(profile_sizes(args.profile), design)
    data = fold(features, recipe.window_spec, val_lo, val_hi, args)
    config = replace(recipe.train, seed=seed, device="cpu", snapshot_every=0)
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    torch.manual_seed(seed)
    model = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads)).build()
    t0 = time.perf_counter()
    result = train(model, data, config)
    out = predict(result.model, data.test.x)
    scale = data.scaler.target_scale
    return {
        "end_ts": data.test.end_ts.astype("datetime64[h]").astype(np.int64).tolist(),
        "var24": ((out["vol"].astype(np.float64) * scale) ** 2).tolist(),
        "var1": ((out["vol_next"].astype(np.float64) * scale) ** 2).tolist(),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_windows": len(data.train),
        "train_span": f"{str(data.train.end_ts.min())[:10]} .. {str(data.train.end_ts.max())[:10]}",
        "stop_span": f"{str(data.val.end_ts.min())[:10]} .. {str(data.val.end_ts.max())[:10]}",
        "seconds": time.perf_counter() - t0,
    }


def baselines(features: pl.DataFrame, data: WindowData) -> dict[int, dict[str, np.ndarray]]:
    """The baselines fitted on the fold's training hours, at the design-validation origins."""
    frame = features.sort("ts")
    ts = frame["ts"].to_numpy()
    returns = frame["log_return"].to_numpy().astype(np.float64)
    hours = ts.astype("datetime64[h]").astype(np.int64)
    log_volume = frame["log_volume"].to_numpy().astype(np.float64)
    origins = np.searchsorted(ts, data.test.end_ts)
    train_lo = int(np.searchsorted(ts, data.train.end_ts.min())) - (data.spec.window - 1)
    train_hi = int(np.searchsorted(ts, data.train.end_ts.max())) + 1
    out, errors = volatility_baselines(returns, max(train_lo, 1), train_hi, origins, (1, 24), hours, log_volume)
    if errors:
        print(f"baseline errors: {errors}", flush=True)
    return {h: {k: v for k, v in out[h].items() if k in BASELINES} for h in (1, 24)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--periods", type=int, default=12, help="as `workflows run --periods` (default 12)")
    parser.add_argument("--val-start", default="2020-04-01", help="first design-validation window end (UTC)")
    parser.add_argument("--stop-days", type=int, default=14, help="early-stopping days before the validation")
    parser.add_argument("--train-days", type=int, default=270)
    parser.add_argument("--cache", default="/tmp/vol_design_cache.json")
    parser.add_argument("--report-only", action="store_true", help="write the table from the cache, train nothing")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    path = DATA / f"Binance_{args.symbol}_1h.csv"
    if not path.exists():
        sys.exit(f"{path} not found: this benchmark reads the real export in ../shared/data")
    features = compute_features(read_candle_file(path).candles.sort("ts"))
    period = first_forecast_period(features, args.periods)
    val_lo = parse_iso_hour(args.val_start)
    val_hi = period.start_hour - 24  # window ends before this: every 24 h target ends before the period
    if val_lo >= val_hi:
        sys.exit(f"--val-start {args.val_start} is not before the first forecast period {period.key}")
    print(f"first forecast period {period.key}; design validation window ends {args.val_start} .. {val_hi}")

    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    tag = f"{args.symbol}|{args.profile}|{args.epochs}|{args.val_start}|{args.stop_days}|{args.train_days}"
    t_start = time.perf_counter()
    for name in args.candidates:
        for seed in args.seeds:
            key = f"{tag}|{name}|{seed}"
            if key in cache or args.report_only:
                continue
            r = run_candidate(features, CANDIDATES[name], seed, val_lo, val_hi, args)
            cache[key] = r
            cache_path.write_text(json.dumps(cache))
            print(
                f"{name} seed {seed}: best epoch {r['best_epoch']}/{r['epochs_run']}, {r['seconds']:.0f} s",
                flush=True,
            )
    cpu_wall = time.perf_counter() - t_start

    base_data = fold(features, volatility_recipe(profile_sizes(args.profile)).window_spec, val_lo, val_hi, args)
    base = baselines(features, base_data)
    truth = realised(base_data)
    base_hours = base_data.test.end_ts.astype("datetime64[h]").astype(np.int64)
    runs: dict[str, list[dict]] = {}
    for k, r in cache.items():
        if k.startswith(tag + "|") and k.split("|")[-2] in args.candidates:
            runs.setdefault(k.split("|")[-2], []).append(r)
    common = set(base_hours.tolist())
    for rs in runs.values():
        for r in rs:
            common &= set(r["end_ts"])
    keep = np.isin(base_hours, sorted(common))
    rows = []
    for h in (24, 1):
        for name, v in base[h].items():
            rows.append((h, name, "baseline", [float(qlike_losses(v[keep], truth[h][keep]).mean())], ""))
        for name in CANDIDATES:
            if name not in runs:
                continue
            scores = []
            for r in runs[name]:
                ends = np.array(r["end_ts"])
                idx = np.searchsorted(ends, base_hours[keep])
                f = np.array(r["var24" if h == 24 else "var1"])[idx]
                scores.append(float(qlike_losses(f, truth[h][keep]).mean()))
            epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in runs[name])
            rows.append((h, name, CANDIDATES[name].label(), scores, epochs))
    lines = []
    for h in (24, 1):
        lines += [
            "",
            f"Horizon {h} h ({int(keep.sum()):,} validation hours, window ends "
            f"{str(base_data.test.end_ts[keep].min())[:13]} .. {str(base_data.test.end_ts[keep].max())[:13]} UTC):",
            "",
            "| forecaster | design | QLIKE mean | spread over seeds (min .. max) | seeds | best epoch / run |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for _h, name, label, scores, epochs in sorted((r for r in rows if r[0] == h), key=lambda r: np.mean(r[3])):
            spread = f"{min(scores):.4f} .. {max(scores):.4f}" if len(scores) > 1 else ""
            lines.append(
                f"| {name} | {label} | {np.mean(scores):.4f} | {spread} | {len(scores) if label != 'baseline' else ''} "
                f"| {epochs} |"
            )
    print("\n".join(lines))
    tried = [n for n in CANDIDATES if n in runs]
    untried = [n for n in CANDIDATES if n not in runs]
    any_run = next(iter(next(iter(runs.values()))), None) if runs else None
    header = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}, torch {torch.__version__}, 1 torch thread, "
        f"under `nice` on a shared machine. `python -m benchmarks.vol_design --symbol {args.symbol}`"
        f"{' --epochs ' + str(args.epochs) if args.epochs else ''}; {sum(len(v) for v in runs.values())} trainings, "
        f"{sum(r['seconds'] for v in runs.values() for r in v) / 60:.1f} min of training wall time in all "
        f"({cpu_wall / 60:.1f} min in the invocation that wrote this; the rest cached).",
        "",
        f"Every hour here is before {period.key}, the first of the {args.periods} forecast periods the default "
        "`workflows run` backfills (`trainable_periods`), so no design choice is made on hours the report of "
        f"record scores. One fold like a period's: training window ends {any_run['train_span'] if any_run else ''} "
        f"({args.train_days} days), early stopping on {any_run['stop_span'] if any_run else ''} ({args.stop_days} "
        "days), embargoes between (a 168-hour window's embargo is 192 h, so its training ends 120 h earlier); the "
        "design is judged on the validation hours below. The volatility recipe at "
        f"the `{args.profile}` profile's sizes (QueryAttentionLSTM, QLIKE on the 24 h and next-hour variance), one "
        "run per seed; the baselines are fitted on the same training hours. Tried: "
        f"{', '.join(tried)}." + (f" Not tried (CPU budget): {', '.join(untried)}." if untried else ""),
        f"The recipe's default design now: {VOLATILITY_DESIGN.label()}.",
    ]
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", KEY, TITLE, "\n".join(header + lines))


if __name__ == "__main__":
    main()
