"""Size of the model confidence set with equally good forecasters whose losses have long memory.

    nice -n 10 .venv/bin/python -m benchmarks.mcs_size [--samples 200] [--reps 300] [--no-write]

k in {2, 5} forecasters with equal expected loss; each one's hourly loss is its own long-memory noise
(ARFIMA(0, d, 0), d in {0, 0.2, 0.4}; drawn afresh each month, or one series across the year), plus a level of
its own in each 720-hour month (sd 0.2; monthly refits), over 8,640 hours (twelve monthly periods, the product's
n). `model_confidence_set` at 90% two ways: `arch`'s stationary bootstrap of the hours (the data-driven block)
and whole periods resampled (the per-period mean losses); and `worse_than_best` (each forecaster against the
best by mean loss, Ibragimov-Mueller on the months, Holm). Size: the share of samples in which any of the
equally good forecasters is dropped (nominal at most 10%). Monte Carlo standard error sqrt(p (1 - p) / samples).
Writes a section of docs/benchmarks.md.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_section
from workflows.stats.significance import model_confidence_set, worse_than_best
from workflows.stats.simulate import fractional_noise, monthly_differentials

ROOT = Path(__file__).resolve().parent.parent
MONTH, MONTHS = 720, 12
N = MONTH * MONTHS


def case(k: int, d: float, within: bool, samples: int, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    periods = np.arange(N) // MONTH
    hits = dict.fromkeys(COLUMNS, 0)
    for _ in range(samples):
        if within:
            x = monthly_differentials(k, MONTHS, d, rng)
        else:
            x = fractional_noise(k, N, d, rng) + 0.2 * rng.standard_normal((k, MONTHS))[:, periods]
        losses = {f"m{i}": x[i] for i in range(k)}
        hourly = model_confidence_set(losses, reps=reps, seed=int(rng.integers(1 << 31)))
        by_period = model_confidence_set(losses, reps=reps, seed=int(rng.integers(1 << 31)), periods=periods)
        hits[COLUMNS[0]] += len(hourly.excluded) > 0
        hits[COLUMNS[1]] += len(by_period.excluded) > 0
        hits[COLUMNS[2]] += len(worse_than_best(losses, periods).worse) > 0
    return {c: v / samples for c, v in hits.items()}


COLUMNS = (
    "MCS, hours (stationary bootstrap)",
    "MCS, whole periods resampled",
    "worse than the best (Ibragimov-Mueller, two-sided, Holm, 5%)",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    lines = [
        f"| forecasters | memory | d | {' | '.join(COLUMNS)} |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    grid = [(k, d, w) for w in (True, False) for k in (2, 5) for d in (0.0, 0.2, 0.4) if not (w and d == 0)]
    for i, (k, d, within) in enumerate(grid):
        rates = case(k, d, within, args.samples, args.reps, seed=7 + i)
        memory = "within months" if within else "across months"
        lines.append(f"| {k} | {memory} | {d:.1f} | " + " | ".join(f"{100 * v:.1f}%" for v in rates.values()) + " |")
        print(lines[-1], f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    if args.no_write:
        return
    se = 100 * np.sqrt(0.1 * 0.9 / args.samples)
    body = "\n".join(
        [
            f"Machine: {machine()}, under `nice -n 10` beside other engineers' test runs. "
            f"`python -m benchmarks.mcs_size --samples {args.samples} --reps {args.reps}`: "
            f"{(time.perf_counter() - t0) / 60:.1f} min. Share of {args.samples} simulated samples of {N:,} hours "
            "(twelve 720-hour periods) in which an equally good forecaster is dropped from the set of best (nominal "
            f"at most 10%; Monte Carlo standard error at 10%: {se:.1f} points; {args.reps} bootstrap resamples per "
            "set). Each forecaster's hourly loss: its own Gaussian ARFIMA(0, d, 0) noise, drawn afresh each month "
            "(memory within months) or one series over the year (across months), plus its own level in each month "
            "(sd 0.2 of the hourly sd). The last column: each forecaster against the one with the lowest mean "
            "loss, two-sided Ibragimov-Mueller test on the monthly means, Holm over the others at 5% (the report's "
            "headline).",
            "",
            *lines,
        ]
    )
    write_section(
        ROOT / "docs" / "benchmarks.md",
        "bench_mcs_size",
        "Model confidence set size under long memory (`benchmarks/mcs_size.py`)",
        body,
    )


if __name__ == "__main__":
    main()
