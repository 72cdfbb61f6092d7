"""Where a volatility model looks, against where volatility itself has memory.

Volatility clusters (the size of a return predicts the size of the next ones) and
follows the clock (the same hour of day repeats its activity), so the
autocorrelation of absolute returns typically falls from lag 1 and rises again near
24 h and 48 h. A volatility model's attention that means something should look like
that profile, and more so than the same architecture untrained or trained on
shuffled targets. Three readings, all from test-window attention and training hours:

* lag groups: the weight on the last 3 hours and on 23-25 hours ago, as lifts over
  uniform with block-bootstrap 95% intervals (simultaneous over the groups); a group
  is "marked" when its interval's lower end clears 1 and the upper end of every
  control's interval for the same group;
* profile against autocorrelation: Spearman rank correlation of the mean attention
  per lag (1 .. window hours ago) with the autocorrelation of absolute returns at the
  same lags on the training hours (pairs exactly k hours apart, so gaps are never
  bridged), with a block-bootstrap 95% interval over test windows, beside the same
  for each control; "ranks like the autocorrelation" only when the model's interval
  lies above 0 and above every control's interval. SciPy's p-value treats the 48
  smooth lags as independent (any recency profile "rejects" against a decaying
  autocorrelation), so it is not used; an untrained or shuffled-target model whose
  profile merely decays with lag ranks as well as the model and is not credited;
* by hour of day: the weight on 24 h ago by the UTC hour of the predicted hour,
  beside the mean absolute return of that hour on the training hours. The test is the
  correlation, over test windows, of each window's weight on 24 h ago with the
  training-hours volatility of its predicted hour of day, with a block-bootstrap 95%
  interval (blocks of 48 windows), with the size of the input 24 hours ago (|r| of that
  hour) partialled out of both (a map that weighs large inputs would otherwise follow
  the cycle through them: busy hours of day have large returns); "follows the daily
  cycle" when the interval's lower end is above 0 and above the controls' correlations
  (partialled the same way). Spearman's correlation of the
  two 24-hour profiles is shown as description only (24 smooth points).
"""

from dataclasses import dataclass, field
from typing import cast

import numpy as np
from scipy import stats

from workflows.attention import metrics as am

# hours ago (inclusive ranges) of the groups a volatility model is expected to mark
LAG_GROUPS: dict[str, tuple[int, int]] = {"last 3 h": (1, 3), "23-25 h ago": (23, 25)}
SEASONAL_LAG = 24


@dataclass(frozen=True)
class LagGroup:
    name: str
    hours: tuple[int, int]
    lift: float  # share of the weight / share under uniform
    lift_ci: tuple[float, float]
    control_bound: float  # upper end of the strongest control's interval for the group (1.0: no control)

    @property
    def marked(self) -> bool:
        return bool(self.lift_ci[0] > 1.0 and self.lift_ci[0] > self.control_bound)


@dataclass(frozen=True)
class HourOfDay:
    """Attention on 24 h ago by the UTC hour of the predicted hour, beside that hour's volatility."""

    lag24_lift: list[float]  # per hour of day 0..23: mean weight on 24 h ago x window (nan: no window)
    abs_return_pct: list[float]  # per hour of day: mean |log return| on training hours, percent
    windows: list[int]
    spearman: float  # of the two 24-hour profiles (descriptive)
    correlation: float  # over windows: weight on 24 h ago vs the volatility of the predicted hour of day
    correlation_ci: tuple[float, float]  # block bootstrap, 95%
    control_correlation: dict[str, float] = field(default_factory=dict)
    control_lag24_lift: dict[str, list[float]] = field(default_factory=dict)  # the controls' lag24_lift
    partialled: bool = False  # the size of the input 24 hours ago partialled out of the correlations

    @property
    def follows_cycle(self) -> bool:
        bound = max(self.control_correlation.values(), default=0.0)
        return bool(self.correlation_ci[0] > 0 and self.correlation_ci[0] > bound)


@dataclass(frozen=True)
class VolatilityAttention:
    groups: list[LagGroup]
    lags: list[int]  # 1 .. T hours ago
    profile: list[float]  # mean attention per lag, sums to 1
    acf: list[float]  # autocorrelation of |r| per lag, training hours
    spearman: float  # profile vs acf over the lags
    spearman_p: float  # scipy's, which ignores the smoothness of both profiles: not used in any verdict
    control_spearman: dict[str, float]
    attention_peaks: list[int]  # lags of the largest local maxima of the profile (up to 3)
    acf_peaks: list[int]  # same for the autocorrelation
    hour_of_day: HourOfDay | None = None
    control_profiles: dict[str, list[float]] = field(default_factory=dict)
    spearman_ci: tuple[float, float] = (float("nan"), float("nan"))  # block bootstrap over windows, 95%
    control_spearman_ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def shared_peaks(self) -> list[int]:
        """Attention peaks within 1 hour of an autocorrelation peak."""
        return [a for a in self.attention_peaks if any(abs(a - b) <= 1 for b in self.acf_peaks)]

    @property
    def matches_acf(self) -> bool:
        """The rank correlation's interval lies above 0 and above every control's interval."""
        bound = max((hi for _lo, hi in self.control_spearman_ci.values()), default=0.0)
        return bool(self.spearman_ci[0] > 0 and self.spearman_ci[0] > bound)

    def group(self, name: str) -> LagGroup:
        return next(g for g in self.groups if g.name == name)


def by_lag(weights: np.ndarray) -> np.ndarray:
    """(N, T) rows oldest-first -> (N, T) columns ordered by lag 1 .. T hours ago."""
    return np.asarray(weights, float)[:, ::-1]


def abs_return_acf(hours: np.ndarray, returns: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of |r| at lags 1 .. max_lag over pairs exactly k hours apart (`hours`: integer hour
    of each return, increasing; missing hours are simply absent)."""
    hours = np.asarray(hours, np.int64)
    a = np.abs(np.asarray(returns, float))
    grid = np.full(int(hours.max() - hours.min()) + 1, np.nan)
    grid[hours - hours.min()] = a
    mean, var = float(np.nanmean(grid)), float(np.nanvar(grid))
    out = np.empty(max_lag)
    for k in range(1, max_lag + 1):
        x, y = grid[:-k], grid[k:]
        ok = ~(np.isnan(x) | np.isnan(y))
        out[k - 1] = float(np.mean((x[ok] - mean) * (y[ok] - mean)) / var) if ok.sum() > 2 and var > 0 else np.nan
    return out


def local_peaks(values: np.ndarray, top: int = 3) -> list[int]:
    """Lags (1-based) of the `top` largest local maxima (an end counts against its one neighbour)."""
    v = np.asarray(values, float)
    left = np.concatenate([[-np.inf], v[:-1]])
    right = np.concatenate([v[1:], [-np.inf]])
    idx = np.flatnonzero((v > left) & (v >= right) & np.isfinite(v))
    return [int(i + 1) for i in idx[np.argsort(-v[idx], kind="stable")][:top]]


def group_lifts(
    weights: np.ndarray, resamples: int = am.DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, tuple[float, tuple[float, float]]]:
    """Lift and simultaneous 95% block-bootstrap interval of each `LAG_GROUPS` share."""
    lag = by_lag(weights)
    t = lag.shape[1]
    cols = [lag[:, lo - 1 : hi].sum(axis=1) for lo, hi in LAG_GROUPS.values()]
    uniform = np.array([(hi - lo + 1) / t for lo, hi in LAG_GROUPS.values()])
    shares = np.stack(cols, axis=1)
    estimate = shares.mean(axis=0) / uniform
    boots = am.block_bootstrap_means(shares, resamples=resamples, seed=seed) / uniform
    se = np.maximum(boots.std(axis=0, ddof=1), 1e-15)
    q = float(np.quantile(np.max(np.abs(boots - estimate) / se, axis=1), am.LEVEL))
    return {
        name: (float(estimate[j]), (float(max(estimate[j] - q * se[j], 0.0)), float(estimate[j] + q * se[j])))
        for j, name in enumerate(LAG_GROUPS)
    }


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its p-value. SciPy builds its `SignificanceResult` class at run time, so
    pyright cannot see its fields; it is a (statistic, pvalue) named tuple."""
    statistic, pvalue = cast(tuple[float, float], stats.spearmanr(x, y))
    return float(statistic), float(pvalue)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if np.std(x) < 1e-15 or np.std(y) < 1e-15:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _correlation_interval(
    x: np.ndarray, y: np.ndarray, resamples: int, seed: int, level: float = am.LEVEL
) -> tuple[float, float]:
    """Percentile block-bootstrap interval of Pearson's correlation over windows."""
    cols = np.stack([x, y, x * x, y * y, x * y], axis=1)
    m = am.block_bootstrap_means(cols, resamples=resamples, seed=seed)
    cov = m[:, 4] - m[:, 0] * m[:, 1]
    sd = np.sqrt(np.maximum(m[:, 2] - m[:, 0] ** 2, 0) * np.maximum(m[:, 3] - m[:, 1] ** 2, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(sd > 0, cov / sd, 0.0)
    lo, hi = np.percentile(r, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def profile_rank_interval(
    weights: np.ndarray, acf: np.ndarray, resamples: int = am.DEFAULT_RESAMPLES, seed: int = 0, level: float = am.LEVEL
) -> tuple[float, float]:
    """Percentile block-bootstrap interval of Spearman's correlation between the mean profile by lag of
    `weights` (N, T; windows in time order, resampled in blocks) and `acf` (T,), over the finite lags."""
    ok = np.isfinite(acf)
    profiles = am.block_bootstrap_means(by_lag(weights)[:, ok], resamples=resamples, seed=seed)
    ranks = stats.rankdata(profiles, axis=1)
    ranks = ranks - ranks.mean(axis=1, keepdims=True)
    target = stats.rankdata(acf[ok])
    target = target - target.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (ranks @ target) / (np.sqrt((ranks**2).sum(axis=1)) * np.sqrt(target @ target))
    rho = np.where(np.isfinite(rho), rho, 0.0)
    lo, hi = np.percentile(rho, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def _partial_out(values: np.ndarray, covariate: np.ndarray | None) -> np.ndarray:
    """Residuals of `values` after a least-squares fit on [1, covariate] (the values unchanged without one)."""
    if covariate is None:
        return values
    x = np.column_stack([np.ones(len(values)), np.asarray(covariate, float)])
    beta = np.linalg.lstsq(x, values, rcond=None)[0]
    return values - x @ beta


def hour_of_day(
    weights: np.ndarray,
    predicted_hour: np.ndarray,
    train_hour: np.ndarray,
    train_returns: np.ndarray,
    control_weights: dict[str, np.ndarray] | None = None,
    resamples: int = am.DEFAULT_RESAMPLES,
    seed: int = 0,
    size_24h: np.ndarray | None = None,
) -> HourOfDay:
    """`size_24h` (N,): the |input| of the hour 24 hours before each predicted hour, partialled out of the
    window-level correlations when given."""
    t = weights.shape[1]
    lag24 = by_lag(weights)[:, SEASONAL_LAG - 1] * t
    hod = np.asarray(predicted_hour) % 24
    counts = np.bincount(hod, minlength=24)

    def by_hour(values: np.ndarray) -> np.ndarray:
        return np.where(counts > 0, np.bincount(hod, weights=values, minlength=24) / np.maximum(counts, 1), np.nan)

    lift = by_hour(lag24)
    thod = np.asarray(train_hour) % 24
    a = np.abs(np.asarray(train_returns, float))
    cycle = np.bincount(thod, weights=a, minlength=24) / np.maximum(np.bincount(thod, minlength=24), 1)
    ok = np.isfinite(lift)
    rho = _spearman(lift[ok], cycle[ok])[0] if ok.sum() >= 4 else float("nan")
    busy = _partial_out(cycle[hod], size_24h)  # the training-hours volatility of each window's predicted hour
    controls = {
        c: _correlation(_partial_out(by_lag(w)[:, SEASONAL_LAG - 1], size_24h), busy)
        for c, w in (control_weights or {}).items()
    }
    lag24_partial = _partial_out(lag24, size_24h)
    return HourOfDay(
        lag24_lift=[float(x) for x in lift],
        abs_return_pct=[float(100 * x) for x in cycle],
        windows=[int(c) for c in counts],
        spearman=rho,
        correlation=_correlation(lag24_partial, busy),
        correlation_ci=_correlation_interval(lag24_partial, busy, resamples, seed),
        control_correlation=controls,
        control_lag24_lift={
            c: [float(x) for x in by_hour(by_lag(w)[:, SEASONAL_LAG - 1] * t)]
            for c, w in (control_weights or {}).items()
        },
        partialled=size_24h is not None,
    )


def volatility_attention(
    attention: np.ndarray,
    control_attention: dict[str, np.ndarray],
    test_end_ts: np.ndarray,
    train_end_ts: np.ndarray,
    train_returns: np.ndarray,
    resamples: int = am.DEFAULT_RESAMPLES,
    seed: int = 0,
    size_24h: np.ndarray | None = None,
) -> VolatilityAttention:
    """`attention` (N, T) over test windows ending at `test_end_ts`; `train_returns` the next-hour returns of
    the training windows ending at `train_end_ts` (so hour end + 1 is the hour of each return); `size_24h` the
    |return| input 24 hours before each predicted hour (partialled out of the hour-of-day reading)."""
    t = attention.shape[1]
    groups_model = group_lifts(attention, resamples, seed)
    groups_ctrl = {c: group_lifts(w, resamples, seed) for c, w in control_attention.items()}
    groups = [
        LagGroup(
            name,
            LAG_GROUPS[name],
            lift,
            ci,
            max([g[name][1][1] for g in groups_ctrl.values()], default=1.0),
        )
        for name, (lift, ci) in groups_model.items()
    ]
    train_hour = np.asarray(train_end_ts).astype("datetime64[h]").astype(np.int64) + 1
    acf = abs_return_acf(train_hour, train_returns, t)
    profile = by_lag(attention).mean(axis=0)
    ok = np.isfinite(acf)
    rho, p = _spearman(profile[ok], acf[ok])
    control_profiles = {c: by_lag(w).mean(axis=0) for c, w in control_attention.items()}
    control_rho = {
        c: _spearman(prof[ok], acf[ok])[0] if np.std(prof) > 1e-12 else 0.0 for c, prof in control_profiles.items()
    }
    predicted_hour = np.asarray(test_end_ts).astype("datetime64[h]").astype(np.int64) + 1
    return VolatilityAttention(
        groups=groups,
        lags=list(range(1, t + 1)),
        profile=[float(x) for x in profile],
        acf=[float(x) for x in acf],
        spearman=float(rho),
        spearman_p=float(p),
        control_spearman=control_rho,
        attention_peaks=local_peaks(profile),
        acf_peaks=local_peaks(acf),
        hour_of_day=hour_of_day(
            attention, predicted_hour, train_hour, train_returns, control_attention, resamples, seed, size_24h
        ),
        control_profiles={c: [float(x) for x in prof] for c, prof in control_profiles.items()},
        spearman_ci=profile_rank_interval(attention, acf, resamples, seed),
        control_spearman_ci={c: profile_rank_interval(w, acf, resamples, seed) for c, w in control_attention.items()},
    )
