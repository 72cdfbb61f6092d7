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


MZ_MIN_DISTINCT = 30  # a forecast with fewer distinct values (a constant per fold) has no slope worth printing


@dataclass(frozen=True)
class MincerZarnowitz:
    """Calibration of a variance forecast f against the realised variance RV, in two parts:

    * swings, in logs (robust to the few spikes that decide the regression in levels):
          ln RV = a + b ln f + e
      b = 1 when the forecast moves as much as the variance does; b < 1: its swings are too
      large. (The intercept absorbs E ln of the noise in RV and is not tested.) Hours whose RV is
      0 (a flat hour) have no log and are left out (`dropped`). No slope for a forecast with fewer
      than `MZ_MIN_DISTINCT` distinct values: a per-fold constant's "slope" only says how the
      folds' levels happened to line up.
    * level: the mean of RV / f, 1 when the forecast is right on average (Patton & Sheppard's GLS
      form of the regression in levels, weighted by 1 / f); `p_level` tests it against 1.

    Standard errors are HAC (Newey-West) with `lags` sized to the memory: the Newey-West (1994)
    data-driven bandwidth of the regression's scores, and never fewer than the horizon (overlapping
    targets share hours). `p_joint` is the smaller of the two p-values times 2 (Bonferroni over
    the two tests; the level test alone where there is no slope)."""

    n: int
    horizon: int
    intercept: float  # of the log regression
    slope: float  # of the log regression (NaN: no slope)
    slope_ci: tuple[float, float]  # 95%
    r2: float  # of the log regression
    p_joint: float
    p_slope: float = float("nan")  # b = 1
    level: float = float("nan")  # mean RV / f
    p_level: float = float("nan")  # mean RV / f = 1
    lags: int = 0
    dropped: int = 0

    @property
    def unbiased(self) -> bool:
        """Not rejected at 5% (the absence of evidence of bias, not proof of its absence)."""
        return bool(self.p_joint >= 0.05)


def memory_lags(scores: np.ndarray, horizon: int = 1) -> int:
    """HAC lags sized to the memory of `scores` ((n,) or (n, k)): the Newey-West (1994) data-driven
    Bartlett bandwidth (`arch`), at least `horizon`, at most a quarter of the sample."""
    from arch.covariance.kernel import Bartlett

    x = np.asarray(scores, float)
    x = x.reshape(len(x), -1)
    try:
        bandwidth = float(Bartlett(x).bandwidth)
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        bandwidth = float(horizon)
    if not np.isfinite(bandwidth):
        bandwidth = float(horizon)
    return int(min(max(int(np.ceil(bandwidth)), int(horizon), 1), max(len(x) // 4, 1)))


def mincer_zarnowitz(forecast_var: np.ndarray, realised_var: np.ndarray, horizon: int = 1) -> MincerZarnowitz:
    import statsmodels.api as sm

    f = np.maximum(np.asarray(forecast_var, float), 1e-18)
    r = np.asarray(realised_var, float)
    nan = float("nan")
    ratio = r / f
    lags_level = memory_lags(ratio - ratio.mean(), horizon)
    level_fit = sm.OLS(ratio - 1.0, np.ones((len(r), 1))).fit(cov_type="HAC", cov_kwds={"maxlags": lags_level})
    level, p_level = float(ratio.mean()), float(level_fit.pvalues[0])
    ok = r > 0
    distinct = len(np.unique(np.round(np.log(f[ok]), 9))) if ok.any() else 0
    if distinct < MZ_MIN_DISTINCT or ok.sum() < 10:
        return MincerZarnowitz(
            len(r), int(horizon), nan, nan, (nan, nan), 0.0, p_level, nan, level, p_level, lags_level, int((~ok).sum())
        )
    y, x = np.log(r[ok]), sm.add_constant(np.log(f[ok]), has_constant="add")
    ols = sm.OLS(y, x).fit()
    lags = memory_lags(x * ols.resid[:, None], horizon)
    fit = sm.OLS(y, x).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    slope, se = float(fit.params[1]), float(fit.bse[1])
    lo, hi = fit.conf_int()[1]
    from scipy import stats as st

    p_slope = float(2 * st.norm.sf(abs(slope - 1.0) / se)) if se > 0 else nan
    return MincerZarnowitz(
        n=len(r),
        horizon=int(horizon),
        intercept=float(fit.params[0]),
        slope=slope,
        slope_ci=(float(lo), float(hi)),
        r2=float(fit.rsquared),
        p_joint=float(min(1.0, 2 * min(p_slope, p_level))),
        p_slope=p_slope,
        level=level,
        p_level=p_level,
        lags=lags,
        dropped=int((~ok).sum()),
    )
