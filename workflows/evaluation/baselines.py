"""Baselines and trained linear controls, fitted on training hours only.

Returns are raw log returns; variances are per-hour variances of log returns.
A forecast "at origin t" uses returns up to and including hour t (the last input
hour of a window) and is about hours t+1 (returns) or t+1 .. t+24 (volatility).

* `RidgeAR`: ridge regression of the next return on a window's inputs (the 48 lagged
  returns, or every feature of the window), the penalty chosen on the validation
  split. It finds a planted linear lag trivially, so a network that does no better
  has learned nothing a linear model could not.
* Volatility: the constant training variance, a rolling 24-hour window, EWMA
  (RiskMetrics, lambda 0.94) and GARCH(1,1) with Student-t shocks (`arch`),
  each a forecast of the mean variance over the next `horizon` hours.
"""

from dataclasses import dataclass

import numpy as np
from scipy import signal

RIDGE_PENALTIES = (0.0, 0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0)


@dataclass(frozen=True)
class RidgeAR:
    """y = intercept + x . coef, on flattened window inputs (scaled units)."""

    coef: np.ndarray
    intercept: float
    penalty: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _flat(x) @ self.coef + self.intercept

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        penalties: tuple[float, ...] = RIDGE_PENALTIES,
    ) -> "RidgeAR":
        """Fit on (x, y) for every penalty and keep the one with the lowest validation MSE."""
        xf, yv = _flat(x).astype(np.float64), np.asarray(y, np.float64)
        mean_x, mean_y = xf.mean(axis=0), float(yv.mean())
        xc, yc = xf - mean_x, yv - mean_y
        gram, rhs = xc.T @ xc, xc.T @ yc
        best: RidgeAR | None = None
        best_mse = np.inf
        for lam in penalties:
            coef = np.linalg.lstsq(gram + lam * len(yv) * np.eye(gram.shape[0]), rhs, rcond=None)[0]
            model = cls(coef, mean_y - float(mean_x @ coef), lam)
            mse = float(np.mean((model.predict(x_val) - y_val) ** 2))
            if mse < best_mse:
                best, best_mse = model, mse
        assert best is not None
        return best


def _flat(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(len(x), -1)


def constant_variance(train_returns: np.ndarray, n: int) -> np.ndarray:
    return np.full(n, float(np.mean(np.asarray(train_returns, float) ** 2)))


def rolling_variance(returns: np.ndarray, origins: np.ndarray, window: int = 24) -> np.ndarray:
    """Mean squared return of hours t-window+1 .. t."""
    sq = np.concatenate([[0.0], np.cumsum(np.asarray(returns, float) ** 2)])
    hi = np.asarray(origins) + 1
    lo = np.maximum(hi - window, 0)
    return (sq[hi] - sq[lo]) / (hi - lo)


def ewma_variance(returns: np.ndarray, origins: np.ndarray, train_end: int, lam: float = 0.94) -> np.ndarray:
    """RiskMetrics: s2[t+1] = lam * s2[t] + (1 - lam) * r[t]^2, started at the training variance.

    The recursion runs over every hour from the start of the series; its start value
    is the mean squared return of returns[:train_end]. The forecast of the mean
    variance over any horizon is s2[t+1] (a flat term structure)."""
    r2 = np.asarray(returns, float) ** 2
    start = float(np.mean(r2[:train_end]))
    # s2[t+1] = lam s2[t] + (1-lam) r2[t], i.e. an IIR filter on r2 with initial state lam * start
    s2_next, _ = signal.lfilter([1 - lam], [1, -lam], r2, zi=[lam * start])
    return s2_next[np.asarray(origins)]


def garch_variance(
    returns: np.ndarray, train: slice, origins: np.ndarray, horizon: int = 24, asymmetric: bool = False
) -> np.ndarray:
    """Mean variance over the next `horizon` hours from GARCH(1,1) (GJR with `asymmetric`)
    fitted on returns[train] with Student-t shocks; parameters then held fixed and the
    filter run over the whole series, so the forecast at t uses returns up to t."""
    from arch import arch_model

    scale = 100.0  # arch prefers returns in percent
    y = np.asarray(returns, float) * scale
    o = 1 if asymmetric else 0
    fitted = arch_model(y[train], mean="Zero", vol="GARCH", p=1, o=o, q=1, dist="t").fit(disp="off")
    full = arch_model(y, mean="Zero", vol="GARCH", p=1, o=o, q=1, dist="t").fix(fitted.params)
    origins = np.asarray(origins)
    first = int(origins.min())
    forecast = full.forecast(horizon=horizon, start=first, reindex=False)
    variance = forecast.variance.to_numpy()  # one row per origin from `first` on
    return variance[origins - first].mean(axis=1) / scale**2


def volatility_baselines(
    returns: np.ndarray, train_lo: int, train_hi: int, origins: np.ndarray, horizon: int = 24
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every variance baseline at `origins`, fitted on returns[train_lo:train_hi]; with the
    errors of any fit that failed (named, never silently dropped)."""
    out = {
        "constant": constant_variance(returns[train_lo:train_hi], len(origins)),
        "rolling_24h": rolling_variance(returns, origins, 24),
        "ewma_0.94": ewma_variance(returns, origins, train_hi),
    }
    errors: dict[str, str] = {}
    try:
        out["garch_1_1"] = garch_variance(returns, slice(train_lo, train_hi), origins, horizon)
    except Exception as exc:  # a degenerate series can defeat the optimiser: say so
        errors["garch_1_1"] = str(exc).splitlines()[0][:200]
    return out, errors
