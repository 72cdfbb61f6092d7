"""Forecast comparison tests: Diebold-Mariano (with the Harvey-Leybourne-Newbold
small-sample correction) and a binomial test for directional accuracy."""

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DMResult:
    statistic: float  # HLN-corrected DM statistic; negative means model 1 has lower loss
    p_better: float  # one-sided p-value for "model 1 is more accurate than model 2"
    p_two_sided: float
    n: int
    mean_loss_diff: float


def diebold_mariano(errors_1: np.ndarray, errors_2: np.ndarray, horizon: int = 1, power: int = 2) -> DMResult:
    """Compare forecast errors of model 1 against model 2 under |e|^power loss (see `dm_test`)."""
    e1, e2 = np.asarray(errors_1, dtype=float), np.asarray(errors_2, dtype=float)
    if e1.shape != e2.shape or e1.ndim != 1:
        raise ValueError("error series must be 1-D and of equal length")
    return dm_test(np.abs(e1) ** power - np.abs(e2) ** power, horizon)


def long_run_variance(d: np.ndarray, horizon: int = 1) -> float:
    """Long-run variance of the mean of `d` times n: autocovariances up to lag horizon-1.

    The larger of two estimates with those lags: the rectangular truncation of Diebold &
    Mariano (1995), which the HLN correction assumes, and the Bartlett-weighted (Newey-West)
    one, which is positive by construction. Negative autocovariances (an over-differenced
    differential, common between forecasts of overlapping targets) can cancel gamma_0 in the
    rectangular sum and leave it at or near zero; used alone it then made the statistic
    explode (7,996,754 on one run and 0.07 on the next, from float rounding), so a claim
    could rest on rounding. Taking the larger keeps the test conservative: it never reports
    more confidence than either estimate allows.
    """
    d = np.asarray(d, dtype=float)
    n = len(d)
    centred = d - d.mean()
    gamma = np.array([centred[k:] @ centred[: n - k] / n for k in range(min(horizon, n))])
    rectangular = gamma[0] + 2 * gamma[1:].sum()
    weights = 1 - np.arange(1, len(gamma)) / len(gamma)
    bartlett = gamma[0] + 2 * (weights * gamma[1:]).sum()
    return float(max(rectangular, bartlett, 0.0))


def dm_test(loss_diff: np.ndarray, horizon: int = 1) -> DMResult:
    """Diebold-Mariano test on a loss differential d = loss_1 - loss_2 (any loss: MSE, QLIKE, ...).

    Forecasts `horizon` steps ahead overlap, so d is autocorrelated up to lag
    horizon-1; the long-run variance uses those lags (`long_run_variance`). The
    statistic gets the Harvey-Leybourne-Newbold (1997) small-sample correction and
    is compared with Student t with n-1 degrees of freedom. `p_better` is the
    one-sided p-value for "model 1 has the lower expected loss".
    """
    d = np.asarray(loss_diff, dtype=float)
    if d.ndim != 1:
        raise ValueError("the loss differential must be 1-D")
    n = len(d)
    if n < 10:
        raise ValueError(f"need at least 10 forecasts for a Diebold-Mariano test, got {n}")
    if not np.all(np.isfinite(d)):
        raise ValueError("the loss differential has NaN or infinite values")
    mean = float(d.mean())
    long_run = long_run_variance(d, horizon)
    if long_run == 0:
        return DMResult(0.0, 0.5, 1.0, n, mean)
    dm = mean / np.sqrt(long_run / n)
    h = horizon
    correction = np.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 1.0) / n)
    stat = float(dm * correction)
    p_better = float(stats.t.cdf(stat, df=n - 1))
    p_two = float(2 * min(p_better, 1 - p_better))
    return DMResult(stat, p_better, p_two, n, mean)


def mean_interval(d: np.ndarray, horizon: int = 1, level: float = 0.95) -> tuple[float, float]:
    """Two-sided `level` interval for the mean of `d`, with the same long-run variance as `dm_test`."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, df=n - 1) * np.sqrt(long_run_variance(d, horizon) / n)
    return float(d.mean() - half), float(d.mean() + half)


def direction_binomial(correct: np.ndarray, chance: float = 0.5) -> tuple[float, float]:
    """Hit rate and one-sided binomial p-value of doing better than `chance`."""
    correct = np.asarray(correct, dtype=bool)
    hits, n = int(correct.sum()), len(correct)
    p = float(stats.binomtest(hits, n, chance, alternative="greater").pvalue) if n else 1.0
    return hits / max(n, 1), p


def skill(mse_model: float, mse_baseline: float) -> float:
    """1 - MSE_model / MSE_baseline: positive when the model beats the baseline."""
    return 1.0 - mse_model / mse_baseline if mse_baseline > 0 else float("nan")


def holm(p_values: "list[float] | np.ndarray") -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the order given; NaN stays NaN.

    The i-th smallest of m p-values is multiplied by m - i + 1 (i from 1), the running
    maximum is taken so the adjusted values keep the order of the raw ones, and the
    result is capped at 1. Rejecting where the adjusted p < alpha controls the
    family-wise error rate at alpha under any dependence between the tests.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out
