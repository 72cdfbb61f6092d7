"""Calibration tests for served intervals and probabilities (leaf: numpy/scipy only).

- Interval coverage: Kupiec (1995) unconditional coverage LR test, Christoffersen (1998)
  independence LR test and their sum, the conditional-coverage test; asymptotic (chi-squared)
  p-values, and Monte Carlo ones (`coverage_test_mc`, Berkowitz, Christoffersen & Pelletier 2011)
  that hold their size at the few misses of a hundred hours.
- Interval and quantile scores: Gneiting & Raftery (2007) interval score, pinball loss.
- Probabilities: multi-category Brier score, its skill against the base-rate forecast,
  and a reliability table (forecast mean vs observed frequency per probability bin).

A "miss" is an hour whose outcome falls outside its interval; at nominal coverage c the
expected miss rate is 1 - c.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import xlogy


@dataclass(frozen=True)
class CoverageTest:
    """Coverage of one interval level on n hours, with the LR tests of its calibration."""

    nominal: float
    observed: float
    n: int
    misses: int
    kupiec_lr: float
    kupiec_p: float
    independence_lr: float
    independence_p: float
    conditional_lr: float
    conditional_p: float


def _bernoulli_loglik(n0: float, n1: float, p: float) -> float:
    return float(xlogy(n0, 1 - p) + xlogy(n1, p))


def misses(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Boolean array: True where y lies outside [lower, upper]."""
    y, lower, upper = (np.asarray(a, dtype=float) for a in (y, lower, upper))
    return (y < lower) | (y > upper)


def kupiec(miss: np.ndarray, nominal: float) -> tuple[float, float]:
    """Kupiec's unconditional coverage LR statistic and p-value (chi-squared, 1 df).

    H0: the miss rate equals 1 - nominal.
    """
    hits = np.asarray(miss, dtype=bool)
    n = hits.size
    if n == 0:
        return float("nan"), float("nan")
    n1 = float(hits.sum())
    n0 = n - n1
    p = 1.0 - nominal
    lr = -2.0 * (_bernoulli_loglik(n0, n1, p) - _bernoulli_loglik(n0, n1, n1 / n))
    lr = max(lr, 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def christoffersen_independence(miss: np.ndarray) -> tuple[float, float]:
    """Christoffersen's independence LR statistic and p-value (chi-squared, 1 df).

    H0: a miss today is as likely after a miss as after a hit (first-order Markov test).
    """
    hits = np.asarray(miss, dtype=bool)
    if hits.size < 2:
        return float("nan"), float("nan")
    prev, cur = hits[:-1], hits[1:]
    n00 = float(np.sum(~prev & ~cur))
    n01 = float(np.sum(~prev & cur))
    n10 = float(np.sum(prev & ~cur))
    n11 = float(np.sum(prev & cur))
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    restricted = _bernoulli_loglik(n00 + n10, n01 + n11, pi)
    unrestricted = _bernoulli_loglik(n00, n01, pi01) + _bernoulli_loglik(n10, n11, pi11)
    lr = max(-2.0 * (restricted - unrestricted), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def _lr_statistics(miss: np.ndarray, nominal: float) -> tuple[np.ndarray, np.ndarray]:
    """Kupiec's and Christoffersen's LR statistics for each row of `miss` (reps, n): vectorised `kupiec` and
    `christoffersen_independence`."""
    m = np.atleast_2d(np.asarray(miss, dtype=bool))
    n = m.shape[1]
    n1 = m.sum(axis=1).astype(float)
    n0 = n - n1
    p = 1.0 - nominal
    kupiec_lr = -2.0 * (xlogy(n0, 1 - p) + xlogy(n1, p) - xlogy(n0, n0 / n) - xlogy(n1, n1 / n))
    prev, cur = m[:, :-1], m[:, 1:]
    n01 = np.sum(~prev & cur, axis=1).astype(float)
    n11 = np.sum(prev & cur, axis=1).astype(float)
    n00 = np.sum(~prev & ~cur, axis=1).astype(float)
    n10 = np.sum(prev & ~cur, axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pi = (n01 + n11) / (n - 1)
        pi01 = np.where(n00 + n01 > 0, n01 / (n00 + n01), 0.0)
        pi11 = np.where(n10 + n11 > 0, n11 / (n10 + n11), 0.0)
    restricted = xlogy(n00 + n10, 1 - pi) + xlogy(n01 + n11, pi)
    unrestricted = xlogy(n00, 1 - pi01) + xlogy(n01, pi01) + xlogy(n10, 1 - pi11) + xlogy(n11, pi11)
    return np.maximum(kupiec_lr, 0.0), np.maximum(-2.0 * (restricted - unrestricted), 0.0)


MC_DRAWS = 9999  # Monte Carlo draws of a calibrated interval's misses per p-value (p resolves 1e-4)


@dataclass(frozen=True)
class MonteCarloCoverage:
    """Kupiec's and Christoffersen's tests of one interval with Monte Carlo p-values."""

    nominal: float
    observed: float
    n: int
    misses: int
    kupiec_lr: float
    kupiec_p: float
    independence_lr: float
    independence_p: float
    draws: int


def coverage_test_mc(
    miss: np.ndarray, nominal: float, draws: int = MC_DRAWS, seed: int = 0, chunk: int = 2000
) -> MonteCarloCoverage:
    """Kupiec and Christoffersen with Monte Carlo p-values (Berkowitz, Christoffersen & Pelletier 2011).

    The LR statistics' chi-squared p-values are poor at small counts (a 95% interval on 70 hours
    expects 3.5 misses): their size drifts with n and the discrete counts. Here each statistic is
    compared with its distribution under the null itself: `draws` sequences of n independent misses
    at rate 1 - nominal (a calibrated interval), p = (1 + #{simulated >= observed}) / (draws + 1),
    ties counted against the interval, so each p-value is valid (never below its size) at any n.
    Seeded: the same misses give the same p-values."""
    hits = np.asarray(miss, dtype=bool)
    n = int(hits.size)
    if n < 2:
        raise ValueError(f"coverage_test_mc needs at least 2 hours, got {n}")
    lr_uc, lr_ind = (float(v[0]) for v in _lr_statistics(hits[None, :], nominal))
    rng = np.random.default_rng(seed)
    above_uc = above_ind = 0
    for start in range(0, draws, chunk):
        sims = rng.random((min(chunk, draws - start), n)) < 1.0 - nominal
        uc, ind = _lr_statistics(sims, nominal)
        above_uc += int(np.sum(uc >= lr_uc - 1e-9))
        above_ind += int(np.sum(ind >= lr_ind - 1e-9))
    return MonteCarloCoverage(
        nominal=nominal,
        observed=float(1.0 - hits.mean()),
        n=n,
        misses=int(hits.sum()),
        kupiec_lr=lr_uc,
        kupiec_p=(1 + above_uc) / (draws + 1),
        independence_lr=lr_ind,
        independence_p=(1 + above_ind) / (draws + 1),
        draws=draws,
    )


def coverage_test(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, nominal: float) -> CoverageTest:
    """Observed coverage of [lower, upper] and the Kupiec, independence and conditional tests."""
    hit = misses(y, lower, upper)
    n = int(hit.size)
    uc_lr, uc_p = kupiec(hit, nominal)
    ind_lr, ind_p = christoffersen_independence(hit)
    cc_lr = uc_lr + ind_lr
    return CoverageTest(
        nominal=nominal,
        observed=float(1.0 - hit.mean()) if n else float("nan"),
        n=n,
        misses=int(hit.sum()),
        kupiec_lr=uc_lr,
        kupiec_p=uc_p,
        independence_lr=ind_lr,
        independence_p=ind_p,
        conditional_lr=cc_lr,
        conditional_p=float(stats.chi2.sf(cc_lr, 2)),
    )


def interval_score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float) -> float:
    """Mean Gneiting-Raftery interval score of central (1 - alpha) intervals (lower is better).

    Width plus 2/alpha times the distance by which the outcome falls outside.
    """
    y, lower, upper = (np.asarray(a, dtype=float) for a in (y, lower, upper))
    below = np.clip(lower - y, 0.0, None)
    above = np.clip(y - upper, 0.0, None)
    return float(np.mean((upper - lower) + (2.0 / alpha) * (below + above)))


@dataclass(frozen=True)
class SdBinCoverage:
    """Coverage of an interval on the hours whose predicted sd falls in one quantile bin (1 = lowest)."""

    bin: int
    sd_low: float
    sd_high: float
    n: int
    observed: float
    kupiec_p: float
    interval_score: float


def coverage_by_sd(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray, sd: np.ndarray, nominal: float, bins: int = 10
) -> list[SdBinCoverage]:
    """Coverage, Kupiec p and the interval score of [lower, upper] by `bins` quantile bins (deciles) of the
    predicted sd. An interval forced to nominal coverage on average (adaptive conformal) can still cover
    too much where the forecast sd is high and too little where it is low; only coverage that holds in
    the lowest and the highest bin (`holds_at_low_and_high_sd`) is conditional on the forecast's own
    uncertainty. Bins with fewer than 20 hours are left out."""
    y, lower, upper, sd = (np.asarray(a, dtype=float) for a in (y, lower, upper, sd))
    if not (y.shape == lower.shape == upper.shape == sd.shape) or y.ndim != 1:
        raise ValueError(
            f"coverage_by_sd: y, lower, upper and sd must be 1-D of one length, got {y.shape}, "
            f"{lower.shape}, {upper.shape}, {sd.shape}"
        )
    edges = np.quantile(sd, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, sd, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.sum() < 20:
            continue
        miss = misses(y[m], lower[m], upper[m])
        out.append(
            SdBinCoverage(
                bin=b + 1,
                sd_low=float(sd[m].min()),
                sd_high=float(sd[m].max()),
                n=int(m.sum()),
                observed=float(1 - miss.mean()),
                kupiec_p=kupiec(miss, nominal)[1],
                interval_score=interval_score(y[m], lower[m], upper[m], 1 - nominal),
            )
        )
    return out


def holds_at_low_and_high_sd(bins: list[SdBinCoverage], alpha: float = 0.05) -> bool:
    """Kupiec does not reject nominal coverage in the lowest and in the highest sd bin (each at `alpha` / 2,
    Bonferroni over the two)."""
    return len(bins) >= 2 and bins[0].kupiec_p >= alpha / 2 and bins[-1].kupiec_p >= alpha / 2


def pinball_loss(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    """Mean pinball (quantile) loss of forecasts q of the tau-quantile of y."""
    diff = np.asarray(y, dtype=float) - np.asarray(q, dtype=float)
    return float(np.mean(np.maximum(tau * diff, (tau - 1.0) * diff)))


def brier_losses(probs: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Per-hour multi-category Brier score: sum over classes of (p - 1[class happened])^2."""
    p = np.atleast_2d(np.asarray(probs, dtype=float))
    onehot = np.eye(p.shape[1])[np.asarray(outcome, dtype=int)]
    return np.sum((p - onehot) ** 2, axis=1)


def brier_score(probs: np.ndarray, outcome: np.ndarray) -> float:
    """Mean multi-category Brier score: probs (n, k) rows summing to 1, outcome class ids 0..k-1."""
    return float(np.mean(brier_losses(probs, outcome)))


def expanding_base_rate(outcome: np.ndarray, k: int) -> np.ndarray:
    """(n, k) class frequencies of the outcomes strictly before each hour, with one pseudo-count per class
    (the first hour gets 1/k each): a base rate that never looks at the hour it forecasts."""
    o = np.asarray(outcome, dtype=int)
    onehot = np.eye(k)[o]
    before = np.cumsum(onehot, axis=0) - onehot
    return (before + 1.0) / (np.arange(o.size)[:, None] + k)


@dataclass(frozen=True)
class BrierSkill:
    brier: float
    base_rate_brier: float
    skill: float  # 1 - brier / base_rate_brier; > 0 beats the base rate
    base_rate: tuple[float, ...]


def brier_skill(probs: np.ndarray, outcome: np.ndarray, base_rate: np.ndarray | None = None) -> BrierSkill:
    """Brier score against the base-rate forecast (the same class frequencies every hour).

    Pass base_rate from hours before the evaluated ones for an out-of-sample reference;
    by default the evaluated hours' own frequencies are used (the hardest constant forecast).
    """
    p = np.atleast_2d(np.asarray(probs, dtype=float))
    o = np.asarray(outcome, dtype=int)
    k = p.shape[1]
    rate = np.bincount(o, minlength=k) / o.size if base_rate is None else np.asarray(base_rate, dtype=float)
    bs = brier_score(p, o)
    ref = brier_score(np.tile(rate, (o.size, 1)), o)
    return BrierSkill(
        brier=bs,
        base_rate_brier=ref,
        skill=float(1.0 - bs / ref) if ref > 0 else float("nan"),
        base_rate=tuple(float(r) for r in rate),
    )


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_forecast: float
    observed_frequency: float


def reliability_table(prob: np.ndarray, happened: np.ndarray, bins: int = 10) -> list[ReliabilityBin]:
    """Reliability of one event's probability: equal-width bins over [0, 1], empty bins left out."""
    p = np.asarray(prob, dtype=float)
    e = np.asarray(happened, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        sel = idx == b
        if not sel.any():
            continue
        table.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=int(sel.sum()),
                mean_forecast=float(p[sel].mean()),
                observed_frequency=float(e[sel].mean()),
            )
        )
    return table
