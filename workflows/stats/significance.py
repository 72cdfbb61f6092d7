"""Forecast comparison tests: Diebold-Mariano (with the Harvey-Leybourne-Newbold
small-sample correction; on the per-period means of the loss differential; or with an
equal-weighted cosine long-run variance), Hansen's model confidence set, a binomial test
for directional accuracy and Holm's correction.

Why three Diebold-Mariano variances. The HLN rule sums autocovariances up to lag h-1,
which is right when the loss differential is h-1 dependent (forecasts of returns, whose
squared errors barely remember). Loss differentials of volatility forecasts inherit
volatility's long memory, and the forecast log's models are refitted every month, which
shifts the differential's level from month to month. Where the log spans at least
`MIN_PERIODS` (3) monthly periods, the pooled comparisons use the Ibragimov-Mueller (2010)
t-test on the per-period means (`period_test`): Student t with G - 1 degrees of freedom
over G periods, valid when the period means are nearly independent and whatever the
dependence and heteroskedasticity inside a period. With fewer periods, or within one, the
test is the memory and autocorrelation consistent (MAC) test (`mac_test`), which estimates
the memory d and scales the variance of the mean by n^(2d - 1). Chosen by the size
simulation in `benchmarks/dm_size.py` (docs/benchmarks.md, docs/evaluation.md) over EWC
with nu = 0.4 n^(2/3) (Lazarus, Lewis, Stock & Watson 2018) and fixed-nu EWC(8), which
reject equal forecasts 18-82% of the time at 5% within one month once the differential
itself has memory d >= 0.2 (MAC: 8-27%). No test of a mean holds its size for every
memory d < 0.5 at these sample sizes: the period test needs the memory not to carry across
months, MAC over-rejects at one month and h = 24 (9-27%), and the report says which test
each verdict rests on.
"""

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DMResult:
    statistic: float  # HLN-corrected DM statistic; negative means model 1 has lower loss
    p_better: float  # one-sided p-value for "model 1 is more accurate than model 2"
    p_two_sided: float
    n: int
    mean_loss_diff: float
    variance: str = "HLN"  # "HLN" (lags up to h-1), "EWC(nu)" or "Ibragimov-Mueller (G periods)"
    periods: int | None = None  # G, the periods whose means the Ibragimov-Mueller test compared (else None)
    std_error: float = float("nan")  # of the mean the statistic divides (HLN: with its correction)
    df: float = float("nan")  # degrees of freedom of the Student t reference
    memory: float | None = None  # the MAC test's local Whittle d (None for the other variances)

    def resolvable(self, power: float = 0.8, alpha: float = 0.05) -> float:
        """The smallest mean loss difference this test finds (one-sided `alpha`) with probability `power`:
        (t_(1 - alpha) + t_power) standard errors."""
        return float((stats.t.ppf(1 - alpha, self.df) + stats.t.ppf(power, self.df)) * self.std_error)


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


def dm_test(
    loss_diff: np.ndarray, horizon: int = 1, long_memory: bool = False, periods: np.ndarray | None = None
) -> DMResult:
    """Diebold-Mariano test on a loss differential d = loss_1 - loss_2 (any loss: MSE, QLIKE, ...).

    By default (HLN): forecasts `horizon` steps ahead overlap, so d is autocorrelated up to
    lag horizon-1; the long-run variance uses those lags (`long_run_variance`), the
    statistic gets the Harvey-Leybourne-Newbold (1997) small-sample correction and is
    compared with Student t with n-1 degrees of freedom. `p_better` is the one-sided
    p-value for "model 1 has the lower expected loss".

    `periods`: each hour's period label (the forecast log's monthly periods, the clusters of
    the test). With at least `MIN_PERIODS` distinct periods the test is `period_test`
    (Ibragimov-Mueller on the per-period means); with fewer, `mac_test`. `long_memory`
    without periods (one sample): `mac_test`. Use either for losses of volatility forecasts.
    """
    d = np.asarray(loss_diff, dtype=float)
    if d.ndim != 1:
        raise ValueError("the loss differential must be 1-D")
    n = len(d)
    if n < 10:
        raise ValueError(f"need at least 10 forecasts for a Diebold-Mariano test, got {n}")
    if not np.all(np.isfinite(d)):
        raise ValueError("the loss differential has NaN or infinite values")
    if periods is not None:
        labels = np.asarray(periods)
        if labels.shape != d.shape:
            raise ValueError(f"periods: one label per hour needed, got {labels.shape} for {d.shape} hours")
        if len(np.unique(labels)) >= MIN_PERIODS:
            return period_test(d, labels)
        return mac_test(d, horizon)
    if long_memory:
        return mac_test(d, horizon)
    mean = float(d.mean())
    long_run = long_run_variance(d, horizon)
    h = horizon
    correction = np.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 1.0) / n)
    se = float(np.sqrt(long_run / n) / correction)
    if long_run == 0:
        return DMResult(0.0, 0.5, 1.0, n, mean, std_error=se, df=n - 1)
    return _t_result(mean / se, n - 1, n, mean, "HLN", None, se)


# The fewest periods on whose means the Ibragimov-Mueller test is run (t with >= 2 df). Three, not the six first
# planned: with monthly level shifts and no memory across months, three periods' t(2) held 4.6-6.5% where MAC, the
# alternative, rejected 15-42% (benchmarks/dm_size.py); the price is power (about 50% where an oracle has 80%).
MIN_PERIODS = 3
MCS_MIN_PERIODS = 6  # the fewest periods the model confidence set resamples whole (fewer: too few to resample)
EWC_DF = 8  # cosine frequencies (= degrees of freedom) of `ewc_test` (a candidate in benchmarks/dm_size.py)


def _t_result(
    stat: float, df: float, n: int, mean: float, label: str, periods: int | None = None, se: float = float("nan")
) -> DMResult:
    p_better = float(stats.t.cdf(stat, df=df))
    return DMResult(float(stat), p_better, float(2 * min(p_better, 1 - p_better)), n, mean, label, periods, se, df)


def period_test(d: np.ndarray, periods: np.ndarray) -> DMResult:
    """Ibragimov & Mueller's (2010) t-test of "the mean loss differential is zero" on the G per-period
    means: their mean over their standard error, Student t with G - 1 degrees of freedom. It asks only
    that the period means be nearly independent and normal-ish; inside a period the hours may be as
    dependent and heteroskedastic as they like, and the level may shift from period to period (monthly
    refits). At 5% two-sided it is conservative when the periods' variances differ (their Theorem 1).
    The statistic weighs every period equally; `mean_loss_diff` is the pooled hourly mean."""
    d = np.asarray(d, dtype=float)
    labels = np.asarray(periods)
    _, index = np.unique(labels, return_inverse=True)
    g = int(index.max()) + 1
    if g < 2:
        raise ValueError("the Ibragimov-Mueller test needs at least 2 periods")
    means = np.bincount(index, weights=d) / np.bincount(index)
    label = f"Ibragimov-Mueller ({g} periods)"
    spread = float(means.std(ddof=1))
    se = float(spread / np.sqrt(g))
    if spread <= 1e-12 * max(float(np.abs(means).max()), 1e-300):
        return DMResult(0.0, 0.5, 1.0, len(d), float(d.mean()), label, g, se, g - 1)
    return _t_result(float(means.mean() / se), g - 1, len(d), float(d.mean()), label, g, se)


def llsw_df(n: int) -> int:
    """Lazarus, Lewis, Stock & Watson's (2018) rule for the EWC test: nu = 0.4 n^(2/3) cosine frequencies."""
    return max(round(0.4 * n ** (2 / 3)), 1)


def ewc_test(d: np.ndarray, nu: int = EWC_DF) -> DMResult:
    """The equal-weighted cosine (EWC) test of a zero mean: the mean over sqrt(`ewc_long_run_variance` / n),
    Student t with `nu` degrees of freedom (exact under fixed-nu asymptotics and weak dependence; Mueller
    2004, LLSW 2018). Under long memory the low-frequency transforms vary less than the mean and the test
    over-rejects, the more so the larger nu (docs/benchmarks.md)."""
    d = np.asarray(d, dtype=float)
    n, mean = len(d), float(d.mean())
    nu = min(nu, n - 1)
    long_run = ewc_long_run_variance(d, nu)
    se = float(np.sqrt(long_run / n))
    if long_run <= 1e-24 * max(float(np.mean(d**2)), 1e-300):
        return DMResult(0.0, 0.5, 1.0, n, mean, f"EWC({nu})", std_error=se, df=nu)
    return _t_result(mean / se, nu, n, mean, f"EWC({nu})", None, se)


MAC_BANDWIDTH = 0.65  # the MAC test reads the m = n^0.65 lowest Fourier frequencies (at most n / (4 h))
_MEMORY_GRID = np.round(np.arange(-0.49, 0.4901, 0.005), 3)


def whittle_memory(periodogram: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Robinson's (1995) local Whittle estimate of the memory d of each row of `periodogram` (its values at the
    Fourier `frequencies` lambda_1 .. lambda_m), minimised over a grid of step 0.005 in [-0.49, 0.49]."""
    i = np.atleast_2d(periodogram)
    lam = np.asarray(frequencies, dtype=float)
    scaled = i @ (lam[None, :] ** (2 * _MEMORY_GRID[:, None])).T / len(lam)  # (rows, grid)
    objective = np.log(np.maximum(scaled, 1e-300)) - 2 * _MEMORY_GRID[None, :] * np.log(lam).mean()
    return _MEMORY_GRID[np.argmin(objective, axis=1)]


def mac_scale(d: np.ndarray) -> np.ndarray:
    """p(d) with Var(sum of n values) ~ G p(d) n^(1 + 2d) for a spectrum G lambda^(-2d) near 0:
    2 Gamma(1 - 2d) sin(pi d) / (d (1 + 2d)), 2 pi at d = 0."""
    from scipy.special import gamma

    d = np.asarray(d, dtype=float)
    safe = np.where(np.abs(d) < 1e-9, 1e-9, d)
    return np.where(
        np.abs(d) < 1e-9, 2 * np.pi, 2 * gamma(1 - 2 * safe) * np.sin(np.pi * safe) / (safe * (1 + 2 * safe))
    )


def mac_frequencies(n: int, horizon: int = 1) -> int:
    """m for the MAC test: n^MAC_BANDWIDTH, but no higher than n / (4 h), where an h-hour target's overlap (a
    moving sum of h hours) starts to bend the spectrum down, and at least 4."""
    return max(min(int(n**MAC_BANDWIDTH), n // (4 * horizon)), 4)


def mac_test(d: np.ndarray, horizon: int = 1) -> DMResult:
    """The memory and autocorrelation consistent (MAC) test of a zero mean (Robinson 2005; for forecast
    comparisons Kruse, Leschinski & Will 2019): the mean over its standard error under long memory,
    sqrt(G p(d) n^(2d - 1)), with d the local Whittle estimate and G the mean of lambda_j^(2d) I(lambda_j)
    over the same m lowest frequencies; standard normal. The error of d is not in the reference."""
    d = np.asarray(d, dtype=float)
    n, mean = len(d), float(d.mean())
    m = mac_frequencies(n, horizon)
    lam = 2 * np.pi * np.arange(1, m + 1) / n
    periodogram = np.abs(np.fft.rfft(d - mean)[1 : m + 1]) ** 2 / (2 * np.pi * n)
    memory = float(whittle_memory(periodogram, lam)[0])
    level = float(np.mean(lam ** (2 * memory) * periodogram))
    se = float(np.sqrt(max(level * float(mac_scale(np.array(memory))), 0.0) * n ** (2 * memory - 1)))
    label = f"MAC (d = {memory:.2f})"
    if se <= 1e-12 * max(float(np.abs(d).max()), 1e-300):
        return DMResult(0.0, 0.5, 1.0, n, mean, label, std_error=se, df=np.inf, memory=memory)
    return replace(_t_result(mean / se, np.inf, n, mean, label, None, se), memory=memory)


def _cosine_weights(n: int, nu: int) -> np.ndarray:
    """(nu, n): sqrt(2/n) cos(pi j (t + 1/2) / n) for j = 1 .. nu, t = 0 .. n-1."""
    j = np.arange(1, nu + 1)[:, None]
    t = np.arange(n)[None, :]
    return np.sqrt(2.0 / n) * np.cos(np.pi * j * (t + 0.5) / n)


def ewc_transforms(d: np.ndarray, nu: int = EWC_DF) -> np.ndarray:
    """The first `nu` cosine transforms of the centred series, sqrt(2/n) sum_t cos(pi j (t + 1/2) / n) d_t."""
    d = np.asarray(d, dtype=float)
    return _cosine_weights(len(d), nu) @ (d - d.mean())


def ewc_long_run_variance(d: np.ndarray, nu: int = EWC_DF) -> float:
    """Equal-weighted cosine long-run variance: the mean of the squares of the first `nu` cosine
    transforms (`ewc_transforms`). Each is about N(0, long-run variance) and they are nearly independent,
    so the ratio of the mean to its standard error is Student t with nu degrees of freedom."""
    return float(np.mean(ewc_transforms(d, nu) ** 2))


@dataclass(frozen=True)
class ConfidenceSet:
    """Hansen, Lunde & Nason's (2011) model confidence set: the forecasters that cannot be told from
    the best at `size` (the set of best forecasters at 1 - size), from `arch.bootstrap.MCS` with the
    range statistic. `periods` > 0: resampled by whole periods (the per-period mean losses, drawn with
    replacement; `block` 1); 0: a stationary block bootstrap of the hourly losses (mean block `block`)."""

    size: float
    included: list[str]  # the set, best mean loss first
    excluded: list[str]  # in the order they were eliminated
    pvalues: dict[str, float]  # the MCS p-value of each forecaster (in the set when >= size)
    mean_loss: dict[str, float]
    block: int
    reps: int
    periods: int = 0  # G when whole periods were resampled, else 0

    def contains(self, name: str) -> bool:
        return name in self.included

    @property
    def resampling(self) -> str:
        if self.periods:
            return f"whole monthly periods resampled ({self.periods} periods)"
        return f"stationary block bootstrap of the hours (mean block {self.block} h)"


def model_confidence_set(
    losses: dict[str, np.ndarray],
    size: float = 0.10,
    reps: int = 1000,
    block: int | None = None,
    seed: int = 0,
    periods: np.ndarray | None = None,
) -> ConfidenceSet:
    """The model confidence set of the forecasters whose per-hour `losses` (aligned, same hours) are
    given. `periods` (each hour's period label) with at least `MCS_MIN_PERIODS` periods: the set is computed
    on the per-period mean losses, resampling whole periods (their dependence kept whole, as in
    `period_test`); otherwise on the hours with a stationary bootstrap whose mean block `block` is by
    default Politis & White's optimal length for the loss differentials against the cross-sectional
    mean loss (the largest over the forecasters), at least 24 hours and at most a tenth of the sample.
    The hourly bootstrap does not hold its size under long memory (docs/benchmarks.md)."""
    import pandas as pd
    from arch.bootstrap import MCS, optimal_block_length

    if len(losses) < 2:
        raise ValueError(f"a model confidence set needs at least 2 forecasters, got {len(losses)}")
    full = pd.DataFrame({k: np.asarray(v, float) for k, v in losses.items()})
    if not np.all(np.isfinite(full.to_numpy())):
        raise ValueError("the losses have NaN or infinite values")
    means = full.to_numpy().mean(axis=0)
    mean_loss = {str(k): float(m) for k, m in zip(full.columns, means)}
    # forecasters with identical losses cannot be told apart: one stands for all (their differences have no
    # variance, which the bootstrap statistic divides by)
    twin_of: dict[str, str] = {}
    for k in full.columns:
        twin_of[str(k)] = next((str(u) for u in twin_of.values() if np.array_equal(full[u], full[k])), str(k))
    unique = sorted(set(twin_of.values()), key=list(full.columns).index)
    if len(unique) == 1:
        return ConfidenceSet(
            size, sorted(mean_loss, key=lambda k: mean_loss[k]), [], dict.fromkeys(mean_loss, 1.0), mean_loss, 0, 0
        )
    frame = pd.DataFrame({k: full[k].to_numpy() for k in unique})
    n = len(frame)
    g = 0
    if periods is not None:
        labels = np.asarray(periods)
        if labels.shape != (n,):
            raise ValueError(f"periods: one label per hour needed, got {labels.shape} for {n} hours")
        _, index = np.unique(labels, return_inverse=True)
        if index.max() + 1 >= MCS_MIN_PERIODS:
            g = int(index.max()) + 1
            sums = np.zeros((g, frame.shape[1]))
            np.add.at(sums, index, frame.to_numpy())
            frame = pd.DataFrame(sums / np.bincount(index)[:, None], columns=frame.columns)
            block = 1
    if block is None:
        diffs = frame.sub(frame.mean(axis=1), axis=0)
        lengths = optimal_block_length(diffs)["stationary"].to_numpy()
        finite = lengths[np.isfinite(lengths)]
        block = int(np.clip(np.ceil(finite.max()) if len(finite) else 24, 24, max(n // 10, 24)))
    mcs = MCS(frame, size=size, reps=reps, block_size=block, method="R", bootstrap="stationary", seed=seed)
    mcs.compute()
    pv = mcs.pvalues["Pvalue"]
    unique_p = {str(k): float(v) for k, v in zip(pv.index, pv.to_numpy())}
    pvalues = {k: unique_p[twin_of[k]] for k in mean_loss}
    kept = {str(k) for k in mcs.included}
    included = sorted((k for k in mean_loss if twin_of[k] in kept), key=lambda k: mean_loss[k])
    excluded = [k for u in map(str, mcs.excluded) for k in mean_loss if twin_of[k] == u]
    return ConfidenceSet(size, included, excluded, pvalues, mean_loss, block, reps, g)


@dataclass(frozen=True)
class BestComparison:
    """Every forecaster against the one with the lowest mean loss: "worse than the best" by the two-sided
    test (`dm_test` on its loss minus the best's, with the periods; the best is chosen by the same data, so
    the one-sided test would reject equal forecasters twice as often), Holm-corrected over the others at
    `alpha`. Measured with equally good forecasters under long memory in docs/benchmarks.md."""

    best: str
    tests: dict[str, DMResult]  # forecaster -> its loss minus the best's
    p_holm: dict[str, float]  # forecaster -> Holm-adjusted two-sided p of "worse than the best"
    mean_loss: dict[str, float]
    alpha: float

    @property
    def worse(self) -> list[str]:
        """The forecasters shown worse than the best, best mean loss first."""
        return sorted((k for k, p in self.p_holm.items() if p < self.alpha), key=lambda k: self.mean_loss[k])

    @property
    def not_shown_worse(self) -> list[str]:
        """The best and every forecaster not shown worse than it, best mean loss first."""
        return sorted((k for k in self.mean_loss if k not in self.worse), key=lambda k: self.mean_loss[k])


def worse_than_best(
    losses: dict[str, np.ndarray], periods: np.ndarray | None = None, horizon: int = 1, alpha: float = 0.05
) -> BestComparison:
    """`BestComparison` of the forecasters whose per-hour `losses` (aligned, same hours) are given."""
    if len(losses) < 2:
        raise ValueError(f"a comparison with the best needs at least 2 forecasters, got {len(losses)}")
    mean_loss = {k: float(np.mean(v)) for k, v in losses.items()}
    best = min(mean_loss, key=lambda k: mean_loss[k])
    others = [k for k in losses if k != best]
    tests = {
        k: dm_test(np.asarray(losses[k], float) - np.asarray(losses[best], float), horizon, True, periods)
        for k in others
    }
    adjusted = holm([tests[k].p_two_sided for k in others])
    return BestComparison(best, tests, {k: float(p) for k, p in zip(others, adjusted)}, mean_loss, alpha)


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
