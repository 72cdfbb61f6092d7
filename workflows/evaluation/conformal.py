"""Conformal prediction intervals for the served return forecast.

Two calibrations, both on hours strictly before the hours they cover:

- Scaled split conformal: scores |y - yhat| / sigma_hat on a calibration slice, their
  finite-sample (1 - alpha) quantile q, interval yhat +- q * sigma_hat. The volatility
  forecast sigma_hat carries changes in the return's scale into the interval.
- Adaptive conformal inference (Gibbs & Candes 2021): the same scaled scores, but the
  miscoverage level alpha_t is updated online after every hour,
  alpha_{t+1} = alpha_t + gamma * (alpha - miss_t), so that long-run coverage returns to
  nominal even when the score distribution drifts (a volatility regime the scale misses).

Own short implementation rather than `mapie`: the calibration here is a quantile of a
scaled score and one online update (a few lines), the scale comes from our own volatility
model, and the hours are a time series with a strict past/future split that a scikit-learn
style estimator wrapper would have to be bent to respect; no new dependency.
"""

import math

import numpy as np


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Finite-sample conformal quantile: the ceil((n + 1) level)-th smallest score (inf if n too small)."""
    s = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
    n = s.size
    k = math.ceil((n + 1) * level)
    if n == 0 or k > n:
        return float("inf")
    return float(s[max(k, 1) - 1])


def clipped_quantile(scores: np.ndarray, alpha_t: float) -> float:
    """The adaptive procedure's quantile at miscoverage alpha_t: 0 when alpha_t >= 1, the conformal quantile at
    1 - alpha_t otherwise, and never more than the largest finite score (alpha_t <= 0, or too few scores for
    the level, would ask for an infinite interval)."""
    if alpha_t >= 1:
        return 0.0
    finite = np.asarray(scores, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("inf")
    return min(conformal_quantile(finite, 1.0 - max(alpha_t, 0.0)), float(finite.max()))


def scaled_scores(y: np.ndarray, yhat: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Nonconformity scores |y - yhat| / sigma."""
    return np.abs(np.asarray(y, dtype=float) - np.asarray(yhat, dtype=float)) / np.asarray(sigma, dtype=float)


def split_conformal(
    y_cal: np.ndarray,
    yhat_cal: np.ndarray,
    sigma_cal: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray,
    level: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Intervals yhat +- q sigma with q the conformal quantile of the calibration slice's scaled scores.

    Pass sigma = 1 everywhere for plain (fixed-width) split conformal.
    """
    q = conformal_quantile(scaled_scores(y_cal, yhat_cal, sigma_cal), level)
    half = q * np.asarray(sigma, dtype=float)
    centre = np.asarray(yhat, dtype=float)
    return centre - half, centre + half


def adaptive_conformal_state(
    y: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray,
    level: float,
    start: int,
    gamma: float = 0.005,
    window: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """`adaptive_conformal` with its state: the intervals, the quantile (in units of sigma) each hour used (NaN
    before start), and the miscoverage level alpha_T reached after the last hour (the next hour's)."""
    if start < 1:
        raise ValueError(f"adaptive_conformal: start={start}; it needs at least one calibration hour before it")
    y = np.asarray(y, dtype=float)
    centre = np.asarray(yhat, dtype=float)
    scale = np.asarray(sigma, dtype=float)
    scores = scaled_scores(y, centre, scale)
    lower = np.full(y.size, np.nan)
    upper = np.full(y.size, np.nan)
    quantile = np.full(y.size, np.nan)
    alpha = 1.0 - level
    alpha_t = alpha
    for t in range(start, y.size):
        q = clipped_quantile(scores[max(0, t - window) : t], alpha_t)
        quantile[t] = q
        lower[t] = centre[t] - q * scale[t]
        upper[t] = centre[t] + q * scale[t]
        miss = float(y[t] < lower[t] or y[t] > upper[t])
        alpha_t += gamma * (alpha - miss)
    return lower, upper, quantile, alpha_t


def adaptive_conformal(
    y: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray,
    level: float,
    start: int,
    gamma: float = 0.005,
    window: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive conformal intervals for hours start.. (NaN before start).

    At hour t the interval uses the scaled scores of the `window` hours before t at level
    1 - alpha_t; after y_t is seen, alpha_t moves by gamma * (alpha - miss_t). Only past hours
    enter each interval. After a long run of misses alpha_t falls to 0 or below, where the
    procedure asks for an infinite interval; this one uses the largest score of the window
    instead (`clipped_quantile`: the widest interval the recent hours support), so an interval
    is always finite and servable, and alpha_t keeps its own value to recover from.
    """
    lower, upper, _, _ = adaptive_conformal_state(y, yhat, sigma, level, start, gamma, window)
    return lower, upper


def ewma_sigma(returns: np.ndarray, decay: float = 0.94, warmup: int = 50) -> np.ndarray:
    """One-step-ahead RiskMetrics volatility: sigma_t from returns before t only.

    A fallback scale where no volatility model forecast is at hand; the first hour uses
    the mean square of the first `warmup` returns as its starting variance.
    """
    r = np.asarray(returns, dtype=float)
    var = np.empty(r.size)
    var[0] = float(np.mean(r[:warmup] ** 2)) if r.size else 0.0
    for t in range(1, r.size):
        var[t] = decay * var[t - 1] + (1 - decay) * r[t - 1] ** 2
    return np.sqrt(var)
