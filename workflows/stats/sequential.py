"""An anytime-valid one-sided test of a mean: the normal-mixture e-process (leaf: numpy/scipy only).

The promotion gate looks at its evidence every day for as long as a candidate waits, so a
fixed-n test (valid at one look) would be won by luck in time. This test is valid at any
stopping time: for increments d_1, d_2, ... whose mean is at most 0 under the null,

    E_t = 2 / sqrt(1 + rho^2 t) x exp(rho^2 S_t^2 / (2 (1 + rho^2 t))) x Phi(rho S_t / sqrt(1 + rho^2 t)),

S_t = (d_1 + ... + d_t) / sigma_t, is Robbins' likelihood-ratio mixture exp(lambda S_t - lambda^2 t / 2)
over a half-normal lambda >= 0 of scale rho (the one-sided normal mixture of Howard, Ramdas,
McAuliffe & Sekhon 2021, Ann. Statist. 49(2)). For Gaussian increments of known sd it is a
nonnegative supermartingale under the null with E_0 = 1, so by Ville's inequality
P(E_t >= 1/alpha for some t) <= alpha: reject the null the first time E_t reaches 1/alpha, at
whatever hour one looks. The sd is not known: sigma_t is the running sd of d_1..d_t, which makes
the guarantee asymptotic (the "asymptotic confidence sequences" of Waudby-Smith, Arnold, Wu,
Howard & Ramdas 2024, Ann. Statist.); crossings before `burn_in` increments are not counted, since
there the plug-in is poor. How well the size holds at the product's own hours, with heavy tails and
volatility clusters, is measured by `benchmarks/gate_sequential.py` (docs/benchmarks.md).

rho sets where the boundary is tightest: `mixture_rho2(alpha, t_opt)` is the approximate optimum
for a boundary tightest at t_opt increments (Howard et al. 2021, section 3.5).

Written by hand: the maintained Python packages for e-processes either need a C++ build (confseq,
last released 2023) or announce an unstable API (expectation 0.6); the closed form above is a few
lines and is checked against numerical integration of the mixture (unit tests).

A lifetime budget over candidates: the k-th test of a never-ending sequence runs at
alpha_k = 6 alpha / (pi^2 k^2), which sums to alpha over k = 1, 2, ... (`alpha_for`).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr


def alpha_for(alpha: float, k: int) -> float:
    """The k-th test's level (k >= 1) in a lifetime budget of `alpha`: 6 alpha / (pi^2 k^2)."""
    if k < 1:
        raise ValueError(f"the test index k starts at 1, got {k}")
    return 6.0 * alpha / (math.pi**2 * k**2)


def mixture_rho2(alpha: float, t_opt: float) -> float:
    """The mixture's rho^2 that makes the boundary at level `alpha` about tightest at `t_opt` increments."""
    la = -2.0 * math.log(alpha)
    return (la + math.log(la + 1.0)) / t_opt


def log_mixture_e(s: np.ndarray, t: np.ndarray, rho2: float) -> np.ndarray:
    """log E for standardised sums `s` after `t` increments (closed form of the module docstring)."""
    s, t = np.asarray(s, dtype=float), np.asarray(t, dtype=float)
    v = 1.0 + rho2 * t
    return math.log(2.0) - 0.5 * np.log(v) + rho2 * s**2 / (2.0 * v) + log_ndtr(math.sqrt(rho2) * s / np.sqrt(v))


def log_e_process(d: np.ndarray, rho2: float) -> np.ndarray:
    """log E_t for t = 1..n on increments `d` (null: their mean is at most 0), each standardised by the running
    sd of d_1..d_t (0 where that sd is 0 or t = 1: no evidence yet)."""
    d = np.asarray(d, dtype=float)
    t = np.arange(1, d.size + 1, dtype=float)
    total = np.cumsum(d)
    mean = total / t
    ss = np.cumsum(d**2) - t * mean**2  # sum of squared deviations from the running mean
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.maximum(ss, 0.0) / np.maximum(t - 1.0, 1.0))
        s = np.where((t > 1) & (sd > 1e-300), total / sd, 0.0)
    return log_mixture_e(s, t, rho2)


@dataclass(frozen=True)
class SequentialResult:
    """The e-process of one candidate's evidence, hour by hour, against the threshold 1 / level."""

    hours: int
    level: float  # alpha_k: the test's share of the lifetime budget
    rho2: float
    burn_in: int
    e_value: float  # E at the last hour
    e_max: float  # the largest E at or after the burn-in (the process is judged on its whole path)
    crossed_at: int | None  # 0-based index of the first hour at or after the burn-in where E >= 1 / level

    @property
    def threshold(self) -> float:
        return 1.0 / self.level

    @property
    def rejected(self) -> bool:
        return self.crossed_at is not None


def sequential_test(d: np.ndarray, level: float, t_opt: float, burn_in: int) -> SequentialResult:
    """Test "mean of `d` <= 0" with the normal-mixture e-process at `level`; the first `burn_in` - 1 hours only
    feed the running sd. Rejected when E reached 1 / level at any hour from the burn-in on."""
    d = np.asarray(d, dtype=float)
    rho2 = mixture_rho2(level, t_opt)
    log_e = log_e_process(d, rho2)
    judged = log_e[burn_in - 1 :] if burn_in >= 1 else log_e
    crossed = np.flatnonzero(judged >= math.log(1.0 / level))
    return SequentialResult(
        hours=int(d.size),
        level=level,
        rho2=rho2,
        burn_in=burn_in,
        e_value=float(np.exp(min(log_e[-1], 700.0))) if d.size else 1.0,
        e_max=float(np.exp(min(judged.max(), 700.0))) if judged.size else 1.0,
        crossed_at=int(crossed[0]) + max(burn_in - 1, 0) if crossed.size else None,
    )
