"""Baselines and trained linear controls, fitted on training hours only.

Returns are raw log returns; variances are per-hour variances of log returns.
A forecast "at origin t" uses returns up to and including hour t (the last input
hour of a window) and is about hours t+1 (returns) or t+1 .. t+24 (volatility).

* `RidgeAR`: ridge regression of the next return on a window's inputs (the 48 lagged
  returns, or every feature of the window), the penalty chosen on the validation
  split. It finds a planted linear lag trivially, so a network that does no better
  has learned nothing a linear model could not.
* Volatility: the constant training variance, a rolling 24-hour window, EWMA
  (RiskMetrics, lambda 0.94), HAR-RV (Corsi: last hour, day and week), GARCH(1,1)
  and GJR-GARCH(1,1) with Student-t shocks (`arch`), each a forecast of the mean
  variance over the next `h` hours (h = 1: the next hour's squared return; h = 24).
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


def garch_paths(
    returns: np.ndarray, train: slice, origins: np.ndarray, horizon: int = 24, asymmetric: bool = False
) -> np.ndarray:
    """(len(origins), horizon) variance forecasts for hours t+1 .. t+horizon from GARCH(1,1) (GJR-GARCH(1,1)
    with `asymmetric`: negative shocks may raise the variance more) with Student-t shocks, fitted on
    returns[train]; parameters then held fixed and the filter run over the whole series, so the
    forecast at t uses returns up to t."""
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
    return variance[origins - first] / scale**2


def garch_variance(
    returns: np.ndarray, train: slice, origins: np.ndarray, horizon: int = 24, asymmetric: bool = False
) -> np.ndarray:
    """Mean variance over the next `horizon` hours from GARCH(1,1) (see `garch_paths`)."""
    return garch_paths(returns, train, origins, horizon, asymmetric).mean(axis=1)


HAR_COMPONENTS = (1, 24, 168)  # Corsi's daily / weekly / monthly, in hours: the last hour, day and week


@dataclass(frozen=True)
class HARModel:
    """Corsi's heterogeneous autoregression for realised variance, on hourly squared returns.

    The mean variance of hours t+1 .. t+h is regressed (ordinary least squares, a direct
    forecast for each horizon) on the mean squared return of the last 1, 24 and 168 hours:

        RV(t+1 .. t+h) = b0 + b1 RV1(t) + b24 RV24(t) + b168 RV168(t)

    Fitted on training hours only (origins whose inputs and target both lie inside them).
    A linear forecast can dip below zero; forecasts are floored at 1% of the training
    variance (`floored` counts them at prediction)."""

    intercept: float
    coef: tuple[float, float, float]
    horizon: int
    floor: float

    @staticmethod
    def components(returns: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """(len(origins), 3) mean squared return over the last 1, 24 and 168 hours at each origin."""
        return np.column_stack([rolling_variance(returns, origins, k) for k in HAR_COMPONENTS])

    @staticmethod
    def target(returns: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        r2 = np.asarray(returns, float) ** 2
        return np.stack([r2[np.asarray(origins) + k] for k in range(1, horizon + 1)]).mean(axis=0)

    @classmethod
    def fit(cls, returns: np.ndarray, train_lo: int, train_hi: int, horizon: int = 24) -> "HARModel":
        origins = np.arange(train_lo + max(HAR_COMPONENTS) - 1, train_hi - horizon)
        if len(origins) < 50:
            raise ValueError(f"HAR-RV needs at least 50 training origins, got {len(origins)}")
        x = np.column_stack([np.ones(len(origins)), cls.components(returns, origins)])
        beta = np.linalg.lstsq(x, cls.target(returns, origins, horizon), rcond=None)[0]
        floor = 0.01 * float(np.mean(np.asarray(returns[train_lo:train_hi], float) ** 2))
        return cls(float(beta[0]), (float(beta[1]), float(beta[2]), float(beta[3])), horizon, floor)

    def predict(self, returns: np.ndarray, origins: np.ndarray) -> np.ndarray:
        raw = self.intercept + self.components(returns, origins) @ np.asarray(self.coef)
        return np.maximum(raw, self.floor)


# Every volatility baseline, in the order the report lists them.
VOL_BASELINES = ("constant", "rolling_24h", "ewma_0.94", "har_rv", "garch_1_1", "gjr_garch_1_1")


def volatility_baselines(
    returns: np.ndarray, train_lo: int, train_hi: int, origins: np.ndarray, horizons: tuple[int, ...] = (1, 24)
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, str]]:
    """Every variance baseline at `origins` for each horizon (the mean variance of the next h hours),
    fitted on returns[train_lo:train_hi] (re-fitted per walk-forward fold); with the errors of any fit
    that failed (named, never silently dropped). Constant, rolling and EWMA forecasts are flat in the
    horizon; HAR-RV is fitted per horizon; GARCH and GJR-GARCH are fitted once and averaged over it."""
    constant = constant_variance(returns[train_lo:train_hi], len(origins))
    rolling = rolling_variance(returns, origins, 24)
    ewma = ewma_variance(returns, origins, train_hi)
    out: dict[int, dict[str, np.ndarray]] = {
        h: {"constant": constant, "rolling_24h": rolling, "ewma_0.94": ewma} for h in horizons
    }
    errors: dict[str, str] = {}
    for h in horizons:
        try:
            out[h]["har_rv"] = HARModel.fit(returns, train_lo, train_hi, h).predict(returns, origins)
        except (ValueError, np.linalg.LinAlgError) as exc:
            errors[f"har_rv h={h}"] = str(exc).splitlines()[0][:200]
    for name, asymmetric in (("garch_1_1", False), ("gjr_garch_1_1", True)):
        try:
            paths = garch_paths(returns, slice(train_lo, train_hi), origins, max(horizons), asymmetric)
        except Exception as exc:  # a degenerate series can defeat the optimiser: say so
            errors[name] = str(exc).splitlines()[0][:200]
            continue
        for h in horizons:
            out[h][name] = paths[:, :h].mean(axis=1)
    return out, errors
