"""Size of the Diebold-Mariano test under persistent loss differences: the HLN rule (lags up to h-1), a
Newey-West variance with the Newey-West (1994) data-driven bandwidth, and the equal-weighted cosine
(EWC) variance with nu = 4, 8, 12, 16 frequencies (Student t with nu degrees of freedom), and the report's
test (`dm_test(..., long_memory=True)`: EWC(8) with each transform scaled for the differential's local Whittle
memory). Also its power beside plain EWC(8): the share of replications where the truth is found more accurate
than a forecast off it by the same error (one-sided, 5%).

    nice -n 10 .venv/bin/python -m benchmarks.dm_size [--reps 400] [--n 4000] [--no-write]

Two equally good forecasts of a long-memory variance (log variance ARFIMA(0, 0.4, 0), Student-t(5)
returns), each off the truth by its own persistent error in logs: near-unit-root (AR(1), phi = 0.995)
or long-memory (ARFIMA(0, d, 0), d = 0.3 or 0.45). The share of replications where equality is
rejected at 5% (two-sided) is the size; it should be about 5%. Writes a section of docs/benchmarks.md.
"""

import argparse
from pathlib import Path

import numpy as np
from arch.covariance.kernel import Bartlett
from scipy import signal, stats

from benchmarks.common import machine, write_section
from workflows.stats.losses import qlike_losses
from workflows.stats.significance import dm_test, ewc_long_run_variance

ROOT = Path(__file__).resolve().parent.parent
NUS = (4, 8, 12, 16)
REPORT = "EWC(8), memory-scaled"
COLUMNS = ("HLN", "NW94", *(f"EWC({nu})" for nu in NUS), REPORT)
POWER = ("power EWC(8)", f"power {REPORT}")


def long_memory(n: int, d: float, rng: np.random.Generator, burn: int = 2_000) -> np.ndarray:
    k = np.arange(1, n + burn)
    weights = np.concatenate([[1.0], np.cumprod((k - 1 + d) / k)])
    x = np.asarray(signal.fftconvolve(rng.standard_normal(n + burn), weights))[burn : n + burn]
    return x / x.std()


def near_unit_root(n: int, rng: np.random.Generator, phi: float = 0.995, burn: int = 3_000) -> np.ndarray:
    x = np.asarray(signal.lfilter([1.0], [1.0, -phi], rng.standard_normal(n + burn)))[burn:]
    return x / x.std()


def p_two_sided(d: np.ndarray, lrv: float, df: float | None) -> float:
    stat = d.mean() / np.sqrt(max(lrv, 1e-300) / len(d))
    return float(2 * (stats.norm.sf(abs(stat)) if df is None else stats.t.sf(abs(stat), df)))


def size(errors: str, horizon: int, n: int, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hits: dict[str, list[bool]] = {k: [] for k in COLUMNS + POWER}
    for _ in range(reps):
        true = np.exp(0.5 * long_memory(n + horizon, 0.4, rng)) * 1e-5
        r2 = true * rng.standard_t(5, len(true)) ** 2 * 3 / 5
        box = np.ones(horizon) / horizon
        tv, rv = np.convolve(true, box, "valid")[1 : n + 1], np.convolve(r2, box, "valid")[1 : n + 1]

        def err() -> np.ndarray:
            return near_unit_root(n, rng) if errors == "AR(1) 0.995" else long_memory(n, float(errors[-4:]), rng)

        a = tv * np.exp(0.4 * err())
        d = qlike_losses(a, rv) - qlike_losses(tv * np.exp(0.4 * err()), rv)
        hits["HLN"].append(dm_test(d, horizon).p_two_sided < 0.05)
        nw = float(np.asarray(Bartlett(d).cov.long_run).squeeze())
        hits["NW94"].append(p_two_sided(d, nw, None) < 0.05)
        for nu in NUS:
            hits[f"EWC({nu})"].append(p_two_sided(d, ewc_long_run_variance(d, nu), nu) < 0.05)
        hits[REPORT].append(dm_test(d, horizon, long_memory=True).p_two_sided < 0.05)
        better = qlike_losses(tv, rv) - qlike_losses(a, rv)
        stat = better.mean() / np.sqrt(ewc_long_run_variance(better, 8) / n)
        hits["power EWC(8)"].append(bool(stats.t.cdf(stat, 8) < 0.05))
        hits[f"power {REPORT}"].append(dm_test(better, horizon, long_memory=True).p_better < 0.05)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--n", type=int, default=4_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    cases = [(e, h) for e in ("AR(1) 0.995", "ARFIMA d=0.30", "ARFIMA d=0.45") for h in (1, 24)]
    cols = COLUMNS + POWER
    lines = [
        f"| forecast errors (in logs) | horizon | {' | '.join(cols)} |",
        "| --- | ---: | " + " | ".join("---:" for _ in cols) + " |",
    ]
    for i, (errors, h) in enumerate(cases):
        rates = size(errors, h, args.n, args.reps, seed=100 + i)
        lines.append(f"| {errors} | {h} h | " + " | ".join(f"{100 * rates[c]:.1f}%" for c in cols) + " |")
        print(lines[-1], flush=True)
    if not args.no_write:
        body = "\n".join(
            [
                f"Machine: {machine()}. `python -m benchmarks.dm_size --reps {args.reps} --n {args.n}`: share of "
                f"{args.reps} replications of {args.n:,} hours in which two equally good volatility forecasts are "
                "called different at 5% (two-sided; nominal 5%); the two power columns: share in which the truth "
                "is found more accurate than a forecast off it by the same error (one-sided, 5%). The report's "
                f"volatility tests use {REPORT} (EWC(8) with each cosine transform scaled by Var(mean) / "
                "Var(transform) of fractional noise at the differential's local Whittle memory).",
                "",
                *lines,
            ]
        )
        write_section(
            ROOT / "docs" / "benchmarks.md",
            "bench_dm_size",
            "Diebold-Mariano size under long memory (`benchmarks/dm_size.py`)",
            body,
        )


if __name__ == "__main__":
    main()
