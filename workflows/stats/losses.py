"""Per-hour forecast measures: power of the DM test, sign predictability, QLIKE.

Returns are in raw log-return units; variances are variances of log returns.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def minimum_detectable_skill(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Approximate smallest skill (1 - MSE/MSE_zero) a one-sided DM test detects.

    For a forecast f with skill s on returns r, the loss differential d = (f-r)^2 - r^2
    has mean -s E[r^2] and, when f is uncorrelated with the size of r, standard
    deviation about 2 sqrt(s) E[r^2]; solving for detection gives
    s = ((z_alpha + z_power) * 2)^2 / n. Heavy tails and volatility clustering raise it.
    """
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return float((2 * z) ** 2 / n) if n else float("nan")


def pesaran_timmermann(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Pesaran & Timmermann (1992) test of sign predictability: (statistic, one-sided p)."""
    p_hat = np.asarray(predicted) > 0
    a = np.asarray(actual) > 0
    n = len(a)
    if n < 10:
        return float("nan"), float("nan")
    py, px = a.mean(), p_hat.mean()
    hit = (p_hat == a).mean()
    p_star = py * px + (1 - py) * (1 - px)
    var_hit = p_star * (1 - p_star) / n
    var_star = (
        (2 * py - 1) ** 2 * px * (1 - px) / n
        + (2 * px - 1) ** 2 * py * (1 - py) / n
        + 4 * py * px * (1 - py) * (1 - px) / n**2
    )
    denom = var_hit - var_star
    if denom <= 0:
        return 0.0, 0.5  # degenerate: a constant sign forecast carries no timing information
    statistic = (hit - p_star) / math.sqrt(denom)
    return float(statistic), float(1 - stats.norm.cdf(statistic))


def qlike_losses(forecast_var: np.ndarray, realised_var: np.ndarray) -> np.ndarray:
    """Patton's QLIKE per hour: r/f - ln(r/f) - 1 (0 for a perfect forecast; robust to noisy r)."""
    f = np.maximum(np.asarray(forecast_var, float), 1e-18)
    r = np.maximum(np.asarray(realised_var, float), 1e-18)
    ratio = r / f
    return ratio - np.log(ratio) - 1


def qlike(forecast_var: np.ndarray, realised_var: np.ndarray) -> float:
    return float(np.mean(qlike_losses(forecast_var, realised_var)))


@dataclass(frozen=True)
class MincerZarnowitz:
    """Mincer-Zarnowitz regression of the realised variance on a variance forecast:

        realised = a + b * forecast + e

    An unbiased, efficient forecast has a = 0 and b = 1. Both sides are divided by the
    mean realised variance first, so `intercept` is a share of it. Standard errors are
    HAC (Newey-West with `horizon` lags: overlapping targets share hours), and `p_joint`
    is the Wald test of a = 0 and b = 1 together (for a constant forecast, which has no
    slope, the test of its mean error alone)."""

    n: int
    horizon: int
    intercept: float
    slope: float
    slope_ci: tuple[float, float]  # 95%
    r2: float
    p_joint: float

    @property
    def unbiased(self) -> bool:
        """Not rejected at 5% (the absence of evidence of bias, not proof of its absence)."""
        return bool(self.p_joint >= 0.05)


def mincer_zarnowitz(forecast_var: np.ndarray, realised_var: np.ndarray, horizon: int = 1) -> MincerZarnowitz:
    import statsmodels.api as sm

    f = np.asarray(forecast_var, float)
    r = np.asarray(realised_var, float)
    unit = float(np.mean(r)) or 1.0
    hac = {"cov_type": "HAC", "cov_kwds": {"maxlags": max(int(horizon), 1)}}
    if np.std(f / unit) < 1e-9:  # a constant forecast: no slope to estimate; test its bias alone
        fit = sm.OLS((r - f) / unit, np.ones((len(r), 1))).fit(**hac)
        nan = float("nan")
        return MincerZarnowitz(len(r), int(horizon), float(fit.params[0]), nan, (nan, nan), 0.0, float(fit.pvalues[0]))
    x = sm.add_constant(f / unit, has_constant="add")
    fit = sm.OLS(r / unit, x).fit(**hac)
    wald = fit.wald_test((np.eye(2), np.array([0.0, 1.0])), scalar=True)
    lo, hi = fit.conf_int()[1]
    return MincerZarnowitz(
        n=len(r),
        horizon=int(horizon),
        intercept=float(fit.params[0]),
        slope=float(fit.params[1]),
        slope_ci=(float(lo), float(hi)),
        r2=float(fit.rsquared),
        p_joint=float(wald.pvalue),
    )
