"""Forecast evaluation on a test split: errors, skill against baselines, and tests.

Returns are evaluated in percent of log return (0.5 means a 0.5% move). Every
skill figure is `1 - MSE_model / MSE_baseline` next to the baseline's own error,
and every claim of being better comes with a one-sided test:

* Diebold-Mariano (HLN small-sample correction) against the zero-return forecast
  and against the historical (training) mean;
* direction: the hit rate on hours that moved, a one-sided binomial test against
  50%, and the Pesaran-Timmermann test of predicted vs realised signs;
* where the model gives a predictive variance: the empirical coverage of its
  80% and 95% Gaussian intervals;
* volatility heads: QLIKE and MSE of the 24-hour realised-variance forecast
  against a rolling 24-hour window, the constant training variance and a
  GARCH(1,1) fitted on the training split (the `arch` package).

`minimum_detectable_skill` states the power: the smallest skill a one-sided 5%
test would detect 80% of the time with this many test hours.
"""

import math

import numpy as np
from scipy import stats

from workflows.evaluation.stats import diebold_mariano, direction_binomial, skill

Z80 = stats.norm.ppf(0.90)  # half-width of a central 80% Gaussian interval
Z95 = stats.norm.ppf(0.975)


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


def minimum_detectable_skill(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Approximate smallest skill (1 - MSE/MSE_zero) a one-sided DM test detects.

    For a forecast f with skill s on returns r, the loss differential d = (f-r)^2 - r^2
    has mean -s E[r^2] and, when f is uncorrelated with the size of r, standard
    deviation about 2 sqrt(s) E[r^2]; solving for detection gives
    s = ((z_alpha + z_power) * 2)^2 / n. Heavy tails and volatility clustering raise it.
    """
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return float((2 * z) ** 2 / n) if n else float("nan")


def evaluate_returns(
    predicted: np.ndarray,
    actual: np.ndarray,
    train_mean: float,
    predicted_var: np.ndarray | None = None,
) -> dict:
    """Metrics for next-hour log-return forecasts (both arrays in raw log-return units)."""
    f, r = np.asarray(predicted, float), np.asarray(actual, float)
    e = f - r
    mse, mse_zero = float(np.mean(e**2)), float(np.mean(r**2))
    mse_mean = float(np.mean((train_mean - r) ** 2))
    moved = r != 0
    correct = np.sign(f[moved]) == np.sign(r[moved])
    hit_rate, p_binom = direction_binomial(correct)
    pt_stat, pt_p = pesaran_timmermann(f[moved], r[moved])
    dm_zero = diebold_mariano(e, r)
    dm_mean = diebold_mariano(e, r - train_mean)
    out = {
        "n": int(len(r)),
        "rmse_pct": 100 * math.sqrt(mse),
        "mae_pct": 100 * float(np.mean(np.abs(e))),
        "rmse_zero_pct": 100 * math.sqrt(mse_zero),
        "rmse_mean_pct": 100 * math.sqrt(mse_mean),
        "skill_vs_zero": skill(mse, mse_zero),
        "skill_vs_mean": skill(mse, mse_mean),
        "dm_vs_zero_stat": dm_zero.statistic,
        "dm_vs_zero_p": dm_zero.p_better,
        "dm_vs_mean_stat": dm_mean.statistic,
        "dm_vs_mean_p": dm_mean.p_better,
        "direction_accuracy": hit_rate,
        "direction_n": int(moved.sum()),
        "direction_binomial_p": p_binom,
        "pesaran_timmermann_stat": pt_stat,
        "pesaran_timmermann_p": pt_p,
        "min_detectable_skill": minimum_detectable_skill(len(r)),
    }
    if predicted_var is not None:
        sd = np.sqrt(np.maximum(np.asarray(predicted_var, float), 1e-18))
        out["coverage_80"] = float(np.mean(np.abs(e) <= Z80 * sd))
        out["coverage_95"] = float(np.mean(np.abs(e) <= Z95 * sd))
    return out


def qlike(forecast_var: np.ndarray, realised_var: np.ndarray) -> float:
    """Patton's QLIKE loss, mean of  r/f - ln(r/f) - 1  (0 for a perfect forecast)."""
    f = np.maximum(np.asarray(forecast_var, float), 1e-18)
    r = np.maximum(np.asarray(realised_var, float), 1e-18)
    ratio = r / f
    return float(np.mean(ratio - np.log(ratio) - 1))


def garch_variance_forecasts(
    returns: np.ndarray, train_end: int, origins: np.ndarray, horizon: int = 24
) -> np.ndarray:
    """Mean variance over the next `horizon` hours from GARCH(1,1) fitted on returns[:train_end].

    `origins` are indices t into `returns`; the forecast made at t uses returns up to t.
    The parameters are fitted once on the training split and then held fixed.
    """
    from arch import arch_model

    scale = 100.0  # arch prefers returns in percent
    y = np.asarray(returns, float) * scale
    fitted = arch_model(y[:train_end], mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    full = arch_model(y, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fix(fitted.params)
    forecast = full.forecast(horizon=horizon, start=int(origins.min()), reindex=False)
    variance = forecast.variance.to_numpy()  # rows: origins from start on
    rows = origins - int(origins.min())
    return variance[rows].mean(axis=1) / scale**2


def evaluate_volatility(predicted_vol: np.ndarray, realised_vol: np.ndarray, baselines: dict[str, np.ndarray]) -> dict:
    """QLIKE and MSE of variance forecasts (vol squared) for the model and each baseline."""
    realised_var = np.asarray(realised_vol, float) ** 2
    rows = {"model": np.asarray(predicted_vol, float) ** 2}
    rows.update({name: np.asarray(v, float) ** 2 for name, v in baselines.items()})
    return {
        name: {"qlike": qlike(var, realised_var), "mse": float(np.mean((var - realised_var) ** 2))}
        for name, var in rows.items()
    }
