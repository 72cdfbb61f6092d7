"""Baselines and trained linear controls, fitted on training hours only.

Returns are raw log returns; variances are per-hour variances of log returns.
A forecast "at origin t" uses returns up to and including hour t (the last input
hour of a window) and is about hours t+1 (returns) or t+1 .. t+24 (volatility).

* `RidgeAR`: ridge regression of the next return on a window's inputs (the 48 lagged
  returns, or every feature of the window), the penalty chosen on the validation
  split. It finds a planted linear lag trivially, so a network that does no better
  has learned nothing a linear model could not.
* Volatility: the constant training variance, a rolling 24-hour window, EWMA
  (RiskMetrics, lambda 0.94), HAR-RV (Corsi: last hour, day and week) fitted by OLS
  and by QLIKE, HAR on log realised variance (the field's benchmark; smearing back to
  variance), the same with an hour-of-day factor (intraday volatility has a strong
  daily shape) and with log volume (HAR-X), GARCH(1,1) and GJR-GARCH(1,1) with
  Student-t shocks (`arch`) and a GARCH(1,1) on seasonally adjusted returns; each a
  forecast of the mean variance over the next `h` hours (h = 1: the next hour's
  squared return; h = 24), every parameter (seasonal factors included) fitted on
  training hours only.
"""

from collections.abc import Callable
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
        origins = har_origins(train_lo, train_hi, horizon)
        x = np.column_stack([np.ones(len(origins)), cls.components(returns, origins)])
        beta = np.linalg.lstsq(x, cls.target(returns, origins, horizon), rcond=None)[0]
        floor = 0.01 * float(np.mean(np.asarray(returns[train_lo:train_hi], float) ** 2))
        return cls(float(beta[0]), (float(beta[1]), float(beta[2]), float(beta[3])), horizon, floor)

    def predict(self, returns: np.ndarray, origins: np.ndarray) -> np.ndarray:
        raw = self.intercept + self.components(returns, origins) @ np.asarray(self.coef)
        return np.maximum(raw, self.floor)


# ---------------------------------------------------------------------------------------------
# The field's stronger benchmarks: HAR in logs, HAR fitted by QLIKE, the daily shape, volume.


def har_origins(train_lo: int, train_hi: int, horizon: int) -> np.ndarray:
    """Training origins of a HAR fit: inputs (the last week) and target (the next `horizon` hours) inside
    returns[train_lo:train_hi]."""
    origins = np.arange(train_lo + max(HAR_COMPONENTS) - 1, train_hi - horizon)
    if len(origins) < 50:
        raise ValueError(f"a HAR fit needs at least 50 training origins, got {len(origins)}")
    return origins


def seasonal_factors(returns: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """24 hour-of-day variance factors (mean 1 over the hours of day) from `returns` at integer UTC hours
    `hours` (hours since the epoch): (mean |r| of the hour of day / mean |r|)^2, the squared mean absolute
    return being less swayed by one spike than the mean square. An hour of day with no return gets 1."""
    a = np.abs(np.asarray(returns, float))
    hod = np.asarray(hours, np.int64) % 24
    counts = np.bincount(hod, minlength=24)
    mean_abs = np.bincount(hod, weights=a, minlength=24) / np.maximum(counts, 1)
    overall = float(a.mean()) or 1.0
    factor = np.where(counts > 0, (mean_abs / overall) ** 2, 1.0)
    return factor / factor.mean()


def target_season(factors: np.ndarray, hours: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Mean seasonal factor over the target hours t+1 .. t+h of each origin (calendar hours after the origin)."""
    start = np.asarray(hours, np.int64)[np.asarray(origins)]
    return np.stack([factors[(start + k) % 24] for k in range(1, horizon + 1)]).mean(axis=0)


def _log_floored(x: np.ndarray, floor: float) -> np.ndarray:
    return np.log(np.maximum(x, floor))


@dataclass(frozen=True)
class LogHARModel:
    """HAR on log realised variance (the field's benchmark), with optional extras:

        ln RV(t+1 .. t+h) = b0 + b1 ln RV1(t) + b24 ln RV24(t) + b168 ln RV168(t) [+ volume terms] + u

    fitted by OLS per horizon on training hours. Back to variance with Duan's smearing factor (the
    mean of exp(u) over the training residuals), so the forecast is of the variance, not of its
    geometric mean. Variances are floored at `floor` (1e-4 of the training variance) before the log:
    a zero return (a flat hour) has no log.

    * `seasonal`: the squared returns are first divided by the hour-of-day factor of their hour
      (`seasonal_factors`, estimated on training hours) and the forecast multiplied by the mean
      factor of its target hours;
    * `volume`: two more regressors, the log volume of the last hour and the mean log volume of the
      last 24 hours, each minus the mean log volume of the last week (abnormal activity; the level
      of volume trends over years)."""

    intercept: float
    coef: tuple[float, ...]
    horizon: int
    floor: float
    smearing: float
    factors: tuple[float, ...] | None = None  # 24 hour-of-day factors (seasonal) or None
    volume: bool = False

    @staticmethod
    def _adjusted(returns: np.ndarray, hours: np.ndarray | None, factors: np.ndarray | None) -> np.ndarray:
        r = np.asarray(returns, float)
        if factors is None:
            return r
        assert hours is not None
        return r / np.sqrt(factors[np.asarray(hours, np.int64) % 24])

    @staticmethod
    def design(
        returns: np.ndarray, origins: np.ndarray, floor: float, log_volume: np.ndarray | None = None
    ) -> np.ndarray:
        """(len(origins), 1 + 3 [+ 2]) regressors: a constant, the log HAR components [and volume terms]."""
        cols = [np.ones(len(origins))]
        cols += [_log_floored(c, floor) for c in HARModel.components(returns, origins).T]
        if log_volume is not None:
            v = np.asarray(log_volume, float)
            week = rolling_mean(v, origins, 168)
            cols += [v[np.asarray(origins)] - week, rolling_mean(v, origins, 24) - week]
        return np.column_stack(cols)

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        train_lo: int,
        train_hi: int,
        horizon: int = 24,
        hours: np.ndarray | None = None,
        log_volume: np.ndarray | None = None,
        seasonal: bool = False,
    ) -> "LogHARModel":
        if seasonal and hours is None:
            raise ValueError("a seasonal HAR needs the hour of every return")
        factors = seasonal_factors(returns[train_lo:train_hi], hours[train_lo:train_hi]) if seasonal else None  # type: ignore[index]
        r = cls._adjusted(returns, hours, factors)
        floor = 1e-4 * float(np.mean(r[train_lo:train_hi] ** 2))
        origins = har_origins(train_lo, train_hi, horizon)
        x = cls.design(r, origins, floor, log_volume)
        y = _log_floored(HARModel.target(r, origins, horizon), floor)
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        smearing = float(np.mean(np.exp(y - x @ beta)))
        return cls(
            float(beta[0]),
            tuple(float(b) for b in beta[1:]),
            horizon,
            floor,
            smearing,
            tuple(float(f) for f in factors) if factors is not None else None,
            log_volume is not None,
        )

    def predict(
        self,
        returns: np.ndarray,
        origins: np.ndarray,
        hours: np.ndarray | None = None,
        log_volume: np.ndarray | None = None,
    ) -> np.ndarray:
        if self.volume and log_volume is None:
            raise ValueError("this HAR-X was fitted with volume: pass log_volume")
        factors = np.asarray(self.factors) if self.factors is not None else None
        r = self._adjusted(returns, hours, factors)
        x = self.design(r, origins, self.floor, log_volume if self.volume else None)
        out = np.exp(x @ np.asarray((self.intercept, *self.coef))) * self.smearing
        if factors is not None:
            out = out * target_season(factors, np.asarray(hours), origins, self.horizon)
        return out


def rolling_mean(values: np.ndarray, origins: np.ndarray, window: int) -> np.ndarray:
    """Mean of values[t-window+1 .. t] at each origin t (fewer at the start of the series)."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(values, float))])
    hi = np.asarray(origins) + 1
    lo = np.maximum(hi - window, 0)
    return (c[hi] - c[lo]) / (hi - lo)


def fit_har_qlike(returns: np.ndarray, train_lo: int, train_hi: int, horizon: int = 24) -> HARModel:
    """HAR-RV in levels with its coefficients chosen to minimise the mean QLIKE on training hours
    (Patton 2011: the loss the forecasts are judged by; it weighs an hour by 1 / forecast^2, so calm
    hours count as much as a spike), started from the OLS fit. Forecasts are floored as `HARModel`'s."""
    from scipy import optimize

    ols = HARModel.fit(returns, train_lo, train_hi, horizon)
    origins = har_origins(train_lo, train_hi, horizon)
    unit = float(np.mean(np.asarray(returns[train_lo:train_hi], float) ** 2)) or 1.0
    x = np.column_stack([np.ones(len(origins)), HARModel.components(returns, origins) / unit])
    y = HARModel.target(returns, origins, horizon) / unit
    floor = ols.floor / unit

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        f = x @ beta
        low = f < floor
        f = np.where(low, floor, f)
        ratio = np.maximum(y, 1e-12) / f
        grad_f = np.where(low, 0.0, (f - y) / f**2)
        return float(np.mean(ratio - np.log(ratio) - 1)), (grad_f @ x) / len(y)

    start = np.array([ols.intercept / unit, *ols.coef])
    res = optimize.minimize(loss, start, jac=True, method="L-BFGS-B")
    beta = res.x if res.success or res.fun < loss(start)[0] else start
    return HARModel(float(beta[0] * unit), (float(beta[1]), float(beta[2]), float(beta[3])), horizon, ols.floor)


def seasonal_garch_paths(
    returns: np.ndarray, hours: np.ndarray, train: slice, origins: np.ndarray, horizon: int = 24
) -> np.ndarray:
    """GARCH(1,1) (Student t) on returns divided by the square root of their hour-of-day factor
    (`seasonal_factors`, from returns[train]); the variance path of t+1 .. t+h is multiplied back by the
    factor of each target hour (Andersen & Bollerslev 1997's seasonal adjustment)."""
    factors = seasonal_factors(returns[train], hours[train])
    hod = np.asarray(hours, np.int64) % 24
    adjusted = np.asarray(returns, float) / np.sqrt(factors[hod])
    paths = garch_paths(adjusted, train, origins, horizon)
    start = np.asarray(hours, np.int64)[np.asarray(origins)]
    season = np.column_stack([factors[(start + k) % 24] for k in range(1, horizon + 1)])
    return paths * season


# Every volatility baseline, in the order the report lists them.
VOL_BASELINES = (
    "constant",
    "rolling_24h",
    "ewma_0.94",
    "har_rv",
    "har_rv_qlike",
    "log_har",
    "log_har_seasonal",
    "har_x_volume",
    "garch_1_1",
    "gjr_garch_1_1",
    "garch_seasonal",
)
# The baselines that need the hour of each return (the daily shape) or its volume.
NEEDS_HOURS = ("log_har_seasonal", "garch_seasonal")
NEEDS_VOLUME = ("har_x_volume",)


def volatility_baselines(
    returns: np.ndarray,
    train_lo: int,
    train_hi: int,
    origins: np.ndarray,
    horizons: tuple[int, ...] = (1, 24),
    hours: np.ndarray | None = None,
    log_volume: np.ndarray | None = None,
) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, str]]:
    """Every variance baseline at `origins` for each horizon (the mean variance of the next h hours),
    fitted on returns[train_lo:train_hi] (re-fitted per forecast period); with the errors of any fit
    that failed (named, never silently dropped). Constant, rolling and EWMA forecasts are flat in the
    horizon; the HAR family is fitted per horizon; the GARCH family is fitted once and averaged over it.
    `hours` (integer UTC hours since the epoch, one per return) enables the seasonal baselines,
    `log_volume` (ln(1 + volume), one per return) the HAR-X."""
    constant = constant_variance(returns[train_lo:train_hi], len(origins))
    rolling = rolling_variance(returns, origins, 24)
    ewma = ewma_variance(returns, origins, train_hi)
    out: dict[int, dict[str, np.ndarray]] = {
        h: {"constant": constant, "rolling_24h": rolling, "ewma_0.94": ewma} for h in horizons
    }
    errors: dict[str, str] = {}

    def har_fits(h: int) -> dict[str, Callable[[], np.ndarray]]:
        fits: dict[str, Callable[[], np.ndarray]] = {
            "har_rv": lambda: HARModel.fit(returns, train_lo, train_hi, h).predict(returns, origins),
            "har_rv_qlike": lambda: fit_har_qlike(returns, train_lo, train_hi, h).predict(returns, origins),
            "log_har": lambda: LogHARModel.fit(returns, train_lo, train_hi, h).predict(returns, origins),
        }
        if hours is not None:
            fits["log_har_seasonal"] = lambda: LogHARModel.fit(
                returns, train_lo, train_hi, h, hours=hours, seasonal=True
            ).predict(returns, origins, hours=hours)
        if log_volume is not None:
            fits["har_x_volume"] = lambda: LogHARModel.fit(
                returns, train_lo, train_hi, h, log_volume=log_volume
            ).predict(returns, origins, log_volume=log_volume)
        return fits

    for h in horizons:
        for name, fit in har_fits(h).items():
            try:
                out[h][name] = fit()
            except (ValueError, np.linalg.LinAlgError) as exc:
                errors[f"{name} h={h}"] = str(exc).splitlines()[0][:200]
    garches: dict[str, Callable[[], np.ndarray]] = {
        "garch_1_1": lambda: garch_paths(returns, slice(train_lo, train_hi), origins, max(horizons)),
        "gjr_garch_1_1": lambda: garch_paths(returns, slice(train_lo, train_hi), origins, max(horizons), True),
    }
    if hours is not None:
        garches["garch_seasonal"] = lambda: seasonal_garch_paths(
            returns, hours, slice(train_lo, train_hi), origins, max(horizons)
        )
    for name, fit in garches.items():
        try:
            paths = fit()
        except Exception as exc:  # a degenerate series can defeat the optimiser: say so
            errors[name] = str(exc).splitlines()[0][:200]
            continue
        for h in horizons:
            out[h][name] = paths[:, :h].mean(axis=1)
    return out, errors


@dataclass(frozen=True)
class LogRecalibration:
    """A recalibration of a variance forecast in logs, fitted on hours the forecaster was not trained on
    (each forecast period's validation slice), then applied to the fold's test hours:

        ln RV = a + b ln f + u   ->   f' = exp(a + b ln f) * mean(exp(u))

    b < 1 shrinks a forecast that swings too much; the smearing factor brings the level back to the
    variance. Hours whose realised variance is 0 (flat hours) have no log and are left out."""

    intercept: float
    slope: float
    smearing: float
    hours: int

    @classmethod
    def fit(cls, forecast_var: np.ndarray, realised_var: np.ndarray, min_hours: int = 30) -> "LogRecalibration":
        f = np.asarray(forecast_var, float)
        r = np.asarray(realised_var, float)
        ok = (r > 0) & (f > 0) & np.isfinite(f) & np.isfinite(r)
        if ok.sum() < min_hours:
            raise ValueError(f"a recalibration needs at least {min_hours} validation hours, got {int(ok.sum())}")
        x = np.column_stack([np.ones(int(ok.sum())), np.log(f[ok])])
        y = np.log(r[ok])
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        smearing = float(np.mean(np.exp(y - x @ beta)))
        return cls(float(beta[0]), float(beta[1]), smearing, int(ok.sum()))

    def apply(self, forecast_var: np.ndarray) -> np.ndarray:
        f = np.maximum(np.asarray(forecast_var, float), 1e-18)
        return np.exp(self.intercept + self.slope * np.log(f)) * self.smearing
