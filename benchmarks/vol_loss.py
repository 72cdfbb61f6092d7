"""What training the multitask volatility head on QLIKE (instead of MSE on the volatility) changes.

    nice -n 10 .venv/bin/python -m benchmarks.vol_loss [--seeds 1 2 3] [--epochs N] [--no-real] [--no-write]

For each case (365 synthetic days per data seed; the last ~2 years of real
BTC/USDT hourly candles from ../shared/data when present) the `multitask` recipe
(`cpu` profile) is trained twice with the same seed, once with
`vol_loss="mse"` (the old behaviour: MSE on the 24-hour realised volatility) and
once with `vol_loss="qlike"` (QLIKE on the variance, as the evaluation judges it).
On the test split it reports QLIKE and MSE of the variance forecast, the bias
ratio mean(forecast variance) / mean(realised variance), the Mincer-Zarnowitz
slope of realised on forecast variance, and the one-sided Diebold-Mariano p-value
(horizon 24) for "QLIKE-trained has the lower QLIKE", with the constant training
variance's QLIKE for scale. Writes a section of docs/benchmarks.md.
"""

import argparse
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks.common import machine, write_section  # noqa: E402
from workflows.data.features import compute_features  # noqa: E402
from workflows.data.sources.candles import ts_bounds  # noqa: E402
from workflows.data.sources.files import read_candle_file  # noqa: E402
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles  # noqa: E402
from workflows.evaluation.baselines import constant_variance  # noqa: E402
from workflows.ml.models import ArchConfig  # noqa: E402
from workflows.ml.profiles import recipe_for  # noqa: E402
from workflows.ml.training import predict, train  # noqa: E402
from workflows.ml.windows import build_windows  # noqa: E402
from workflows.stats.losses import qlike, qlike_losses  # noqa: E402
from workflows.stats.significance import dm_test  # noqa: E402

KEY = "bench_vol_loss"
TITLE = "Volatility head: QLIKE against MSE training (`benchmarks/vol_loss.py`)"
REAL_FILE = ROOT.parent / "shared" / "data" / "Binance_BTCUSDT_1h.csv"
REAL_DAYS = 730
VOL_HORIZON = 24
LOSSES = ("mse", "qlike")
# The interpretation is written by hand after looking at a run's figures; a fresh run
# leaves this line in its place so stale words never sit under new numbers.
READING_PLACEHOLDER = "**Reading.** _Not yet written for this run: add 2-4 sentences by hand._"


def mincer_zarnowitz(forecast: np.ndarray, realised: np.ndarray) -> tuple[float, float, float]:
    """OLS realised = a + b * forecast: (a, b, R^2). An unbiased, efficient forecast has a = 0, b = 1."""
    f, r = np.asarray(forecast, float), np.asarray(realised, float)
    fc = f - f.mean()
    denom = float(fc @ fc)
    if denom <= 0:
        return float("nan"), float("nan"), float("nan")
    b = float(fc @ (r - r.mean())) / denom
    a = float(r.mean() - b * f.mean())
    resid = r - a - b * f
    r2 = 1.0 - float(resid @ resid) / float(((r - r.mean()) ** 2).sum())
    return a, b, r2


def real_features() -> pl.DataFrame:
    result = read_candle_file(REAL_FILE)
    candles = result.candles.sort("ts")
    last = ts_bounds(candles)[1]
    candles = candles.filter(pl.col("ts") > last - timedelta(days=REAL_DAYS))
    return compute_features(candles)


def run_case(name: str, features: pl.DataFrame, epochs: int | None, train_seed: int) -> dict:
    recipe = recipe_for("multitask", "cpu")
    data = build_windows(features, recipe.window_spec, data_version=f"bench-vol-{name}")
    scale = data.scaler.target_scale
    realised = (data.test.vol.astype(np.float64) * scale) ** 2
    const = constant_variance(data.train.raw_ret, len(realised))
    arch = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads))
    out: dict = {
        "case": name,
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "test_start": str(data.test.end_ts.min())[:10],
        "test_end": str(data.test.end_ts.max())[:10],
        "qlike_const": qlike(const, realised),
        "mse_const": float(np.mean((const - realised) ** 2)),
        "models": {},
    }
    for kind in LOSSES:
        cfg = replace(recipe.train, vol_loss=kind, seed=train_seed, device="cpu")
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs)
        torch.manual_seed(train_seed)
        model = arch.build()
        t0 = time.perf_counter()
        result = train(model, data, cfg)
        wall = time.perf_counter() - t0
        forecast = (predict(result.model, data.test.x)["vol"].astype(np.float64) * scale) ** 2
        a, b, r2 = mincer_zarnowitz(forecast, realised)
        out["models"][kind] = {
            "forecast": forecast,
            "qlike": qlike(forecast, realised),
            "mse": float(np.mean((forecast - realised) ** 2)),
            "bias": float(forecast.mean() / realised.mean()),
            "mz_a": a,
            "mz_b": b,
            "mz_r2": r2,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "wall": wall,
        }
        m = out["models"][kind]
        print(
            f"  {name} {kind}: qlike {m['qlike']:.4f} mse {m['mse']:.3e} bias {m['bias']:.3f} "
            f"MZ b {b:.3f} R2 {r2:.3f} best epoch {result.best_epoch}/{result.epochs_run} ({wall:.0f} s)",
            flush=True,
        )
    d = qlike_losses(out["models"]["qlike"]["forecast"], realised) - qlike_losses(
        out["models"]["mse"]["forecast"], realised
    )
    dm = dm_test(d, horizon=VOL_HORIZON)
    out["dm_stat"], out["dm_p"] = dm.statistic, dm.p_better
    print(
        f"  {name}: DM stat {dm.statistic:.2f}, p(qlike better) {dm.p_better:.4f}; constant QLIKE "
        f"{out['qlike_const']:.4f}",
        flush=True,
    )
    return out


def table(results: list[dict]) -> list[str]:
    lines = [
        "| case | test windows | vol loss | best epoch / run | QLIKE | MSE of variance | bias ratio "
        "| MZ slope (R²) | DM p, QLIKE-trained better | constant QLIKE |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for kind in LOSSES:
            m = r["models"][kind]
            dm = f"{r['dm_p']:.3g} (DM {r['dm_stat']:+.2f})" if kind == "qlike" else ""
            const = f"{r['qlike_const']:.4f}" if kind == "mse" else ""
            lines.append(
                f"| {r['case']} | {r['test']:,} | {kind} | {m['best_epoch']} / {m['epochs_run']} | {m['qlike']:.4f} | "
                f"{m['mse']:.3e} | {m['bias']:.3f} | {m['mz_b']:.2f} ({m['mz_r2']:.2f}) | {dm} | {const} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="synthetic data seeds")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (cpu profile: 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared 2-core machine, 2 threads ran ~40x slower than 1)",
    )
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    results = []
    for seed in args.seeds:
        feats = compute_features(generate_candles(SyntheticSpec(days=365, seed=seed)))
        results.append(run_case(f"synthetic 365 d, seed {seed}", feats, args.epochs, args.train_seed))
    real_note = ""
    if args.no_real:
        real_note = "Real data skipped (`--no-real`)."
    elif not REAL_FILE.exists():
        real_note = f"Real data skipped: {REAL_FILE.relative_to(ROOT.parent)} not found (it lives outside the project)."
        print(real_note)
    else:
        results.append(run_case(f"BTC/USDT, last {REAL_DAYS} d", real_features(), args.epochs, args.train_seed))
    wall = time.perf_counter() - t_start
    print(f"total wall {wall:.0f} s")

    recipe = recipe_for("multitask", "cpu")
    epochs = args.epochs or recipe.train.epochs
    synth = [r for r in results if r["case"].startswith("synthetic")]
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s) (shared machine, run under `nice`); "
        f"total wall time {wall / 60:.1f} min.",
        "",
        f"`multitask` recipe (`cpu` profile: QueryAttentionLSTM, 14 features, Gaussian return, 24-hour volatility and "
        f"direction heads, loss weights {recipe.train.loss_weights}), up to {epochs} epochs with early stopping "
        f"(patience {recipe.train.patience}) on the validation loss, training seed {args.train_seed} for both runs "
        "of a case. Only `TrainConfig.vol_loss` differs: `mse` is MSE on the 24-hour realised volatility (the old "
        "behaviour), `qlike` is QLIKE on the variance. Both are judged on the test split's variance (mean squared "
        "log return of the next 24 hours): QLIKE, MSE, bias ratio = mean forecast variance / mean realised "
        "variance, Mincer-Zarnowitz slope b of realised = a + b forecast (1 for a calibrated forecast; R² in "
        'brackets), and the one-sided Diebold-Mariano p-value (horizon 24, HLN-corrected) for "the QLIKE-trained '
        'head has the lower expected QLIKE" (negative DM = QLIKE-trained better). Constant QLIKE is the '
        "constant training variance (mean squared training return) for scale.",
        "",
        *table(results),
        "",
        "Test windows end "
        + "; ".join(
            f"{r['case']}: {r['test_start']} .. {r['test_end']} ({r['train']:,} training windows)" for r in results
        )
        + ".",
        "",
    ]
    if real_note:
        lines += [real_note, ""]
    if synth:

        def mean_of(kind, key):
            return float(np.mean([r["models"][kind][key] for r in synth]))

        lines.append(
            f"Synthetic mean over {len(synth)} data seeds: QLIKE {mean_of('mse', 'qlike'):.4f} (mse) vs "
            f"{mean_of('qlike', 'qlike'):.4f} (qlike); bias ratio {mean_of('mse', 'bias'):.3f} vs "
            f"{mean_of('qlike', 'bias'):.3f}; MZ slope {mean_of('mse', 'mz_b'):.2f} vs {mean_of('qlike', 'mz_b'):.2f}."
        )
        lines.append("")
    lines.append(READING_PLACEHOLDER)
    body = "\n".join(lines)
    for r in results:
        for kind in LOSSES:
            r["models"][kind].pop("forecast")
    if args.no_write:
        print(body)
        return
    write_section(Path(args.out), KEY, TITLE, body)


if __name__ == "__main__":
    main()
