"""The volatility baselines alone on a real export, on the product's own monthly forecast periods.

    nice -n 10 .venv/bin/python -m benchmarks.vol_baselines [--symbol BTCUSDT] [--periods 12] [--no-write]

No network is trained: for each of the newest `--periods` monthly forecast periods the history
allows (`PeriodConfig()`: up to 365 training days, the volatility recipe's windows and embargo)
every volatility baseline is fitted on the period's training hours only and forecasts the
period's hours; the hours are pooled, as the forecast log's evaluation pools them. Reported per horizon (24 h: the mean
variance of the next 24 hours; 1 h: the squared next return): each baseline's QLIKE, whether it
is in the 90% model confidence set (Hansen; QLIKE; `arch`), and the one-sided Diebold-Mariano test
against log-HAR: the HLN rule, the plain EWC(8) variance and the MAC test on the pooled hours (the
report's fallback with fewer than three periods) with the memory it estimated, and the Ibragimov-Mueller
t-test on the periods' mean differences (the report's test).
Writes a section of docs/benchmarks.md.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import machine, write_section
from workflows.data.features import compute_features
from workflows.data.sources.files import read_candle_file
from workflows.evaluation.baselines import VOL_BASELINES, volatility_baselines
from workflows.ml.periods import PeriodConfig, period_windows, trainable_periods
from workflows.ml.profiles import recipe_for
from workflows.stats.losses import qlike_losses
from workflows.stats.significance import dm_test, ewc_long_run_variance, model_confidence_set, period_test

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
REFERENCE = "log_har"


def pooled_baselines(features: pl.DataFrame, cfg: PeriodConfig, periods: int) -> tuple[dict, dict, list[str], dict]:
    """horizon -> name -> pooled forecasts, horizon -> pooled realised variance, each period's test span, and
    horizon -> each pooled hour's period (0-based)."""
    spec = recipe_for("volatility", None).window_spec
    frame = features.sort("ts")
    returns = frame["log_return"].to_numpy().astype(np.float64)
    ts = frame["ts"].to_numpy()
    hours = ts.astype("datetime64[h]").astype(np.int64)
    log_volume = frame["log_volume"].to_numpy().astype(np.float64)
    chosen = trainable_periods(features, spec, cfg, max_periods=periods)
    forecasts: dict[int, dict[str, list[np.ndarray]]] = {1: {}, 24: {}}
    realised: dict[int, list[np.ndarray]] = {1: [], 24: []}
    spans = []
    for period in chosen:
        data = period_windows(features, spec, period, cfg)
        if not len(data.test):
            continue
        origins = np.searchsorted(ts, data.test.end_ts)
        train_lo = int(np.searchsorted(ts, data.train.end_ts.min())) - (spec.window - 1)
        train_hi = int(np.searchsorted(ts, data.train.end_ts.max())) + 1
        t0 = time.perf_counter()
        out, errors = volatility_baselines(returns, max(train_lo, 1), train_hi, origins, (1, 24), hours, log_volume)
        if errors:
            print(f"period {period}: {errors}")
        scale = data.scaler.target_scale
        realised[24].append((data.test.vol.astype(np.float64) * scale) ** 2)
        realised[1].append(data.test.raw_ret.astype(np.float64) ** 2)
        for h in (1, 24):
            for name, v in out[h].items():
                forecasts[h].setdefault(name, []).append(v)
        spans.append(f"{str(data.test.end_ts.min())[:10]} .. {str(data.test.end_ts.max())[:10]}")
        print(f"period {period}: {len(origins)} test hours, baselines in {time.perf_counter() - t0:.0f} s")
    pooled = {h: {k: np.concatenate(v) for k, v in forecasts[h].items() if len(v) == len(spans)} for h in (1, 24)}
    folds = {h: np.repeat(np.arange(len(realised[h])), [len(x) for x in realised[h]]) for h in (1, 24)}
    return pooled, {h: np.concatenate(realised[h]) for h in (1, 24)}, spans, folds


def table(symbol: str, pooled: dict, realised: dict, folds: dict) -> list[str]:
    lines = []
    for h in (24, 1):
        losses = {k: qlike_losses(v, realised[h]) for k, v in pooled[h].items()}
        labels = folds[h]
        cs = model_confidence_set(losses)
        ref = losses[REFERENCE]
        lines += [
            "",
            f"{symbol}, horizon {h} h ({len(ref):,} pooled test hours; 90% model confidence set: stationary "
            f"bootstrap, mean block {cs.block} h, {cs.reps} resamples):",
            "",
            f"| baseline | QLIKE | in the 90% set (MCS p) | DM t vs {REFERENCE}: HLN | plain EWC(8) "
            "| MAC (one sample, `dm_test(..., long_memory=True)`) | its memory d | its one-sided p "
            f"| t on the {len(set(labels))} periods' means (Ibragimov-Mueller) | its two-sided p |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in sorted(losses, key=lambda k: float(losses[k].mean())):
            d = losses[name] - ref
            if name == REFERENCE:
                cells = "| | | | | |"
            else:
                hln, ewc = dm_test(d, h), dm_test(d, h, long_memory=True)
                plain = d.mean() / np.sqrt(ewc_long_run_variance(d) / len(d))
                robust = f"{ewc.statistic:+.2f} | {ewc.variance[len('MAC (d = ') : -1]} | {ewc.p_better:.3f}"
                im = period_test(d, labels)
                cells = f"{hln.statistic:+.2f} | {plain:+.2f} | {robust} | {im.statistic:+.2f} | {im.p_two_sided:.3f}"
            lines.append(
                f"| {name} | {losses[name].mean():.4f} | {'yes' if cs.contains(name) else 'no'} "
                f"({cs.pvalues[name]:.3f}) | {cells} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--periods", type=int, default=12, help="the newest N monthly periods (default 12)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    path = DATA / f"Binance_{args.symbol}_1h.csv"
    if not path.exists():
        sys.exit(f"{path} not found: this benchmark reads the real export in ../shared/data")
    features = compute_features(read_candle_file(path).candles.sort("ts"))
    cfg = PeriodConfig()
    t0 = time.perf_counter()
    pooled, realised, spans, folds = pooled_baselines(features, cfg, args.periods)
    lines = table(args.symbol, pooled, realised, folds)
    print("\n".join(lines))
    if not args.no_write:
        body = "\n".join(
            [
                f"Machine: {machine()}. `python -m benchmarks.vol_baselines --symbol {args.symbol}`: no network "
                f"trained; every baseline ({', '.join(VOL_BASELINES)}) fitted per period on training hours only, "
                f"the product's {len(spans)} monthly forecast periods ({'; '.join(spans)}), pooled; "
                f"{time.perf_counter() - t0:.0f} s.",
                *lines,
            ]
        )
        write_section(
            ROOT / "docs" / "benchmarks.md",
            f"bench_vol_baselines_{args.symbol}",
            f"Volatility baselines on real {args.symbol} (`benchmarks/vol_baselines.py`)",
            body,
        )


if __name__ == "__main__":
    main()
