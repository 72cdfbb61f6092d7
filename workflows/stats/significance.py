"""Forecast comparison tests: Diebold-Mariano (with the Harvey-Leybourne-Newbold
small-sample correction, or with a long-run variance robust to long memory), Hansen's
model confidence set, a binomial test for directional accuracy and Holm's correction.

Why two Diebold-Mariano variances. The HLN rule sums autocovariances up to lag h-1,
which is right when the loss differential is h-1 dependent (forecasts of returns,
whose squared errors barely remember). Loss differentials of volatility forecasts
inherit volatility's long memory: they stay correlated for hundreds of hours, and a
variance that stops at lag h-1 (at h = 1: none) makes the test reject equal forecasts
far too often. `ewc_long_run_variance` is the equal-weighted cosine estimator with a
fixed, small number `EWC_DF` of the lowest frequencies (Mueller 2004; Lazarus, Lewis,
Stock & Watson 2018): with nu fixed, the statistic is Student t with nu degrees of
freedom under weak dependence, and because it reads only periods longer than 2n/nu
hours it stays close to its size under strong persistence where a data-driven
Newey-West bandwidth does not. Under true long memory (memory parameter d near 0.5)
the mean still varies more than those low-frequency transforms, and the plain EWC
test rejected equal forecasts 9-10% of the time at 5%. So each transform is scaled
by the exact ratio Var(mean) / Var(transform) of fractionally integrated noise at the
loss differential's own local Whittle memory estimate (`memory_scales`): 1 under
short memory, larger as d grows (measured in workflows_tests/unit/test_significance.py
and docs/benchmarks.md).
"""

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
    variance: str = "HLN"  # "HLN" (lags up to h-1) or "EWC(nu, d=...)" (robust to long memory, at memory d)
    memory: float | None = None  # the memory d the long-memory-robust variance was scaled for (None: HLN)


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


def dm_test(loss_diff: np.ndarray, horizon: int = 1, long_memory: bool = False) -> DMResult:
    """Diebold-Mariano test on a loss differential d = loss_1 - loss_2 (any loss: MSE, QLIKE, ...).

    Forecasts `horizon` steps ahead overlap, so d is autocorrelated up to lag
    horizon-1; the long-run variance uses those lags (`long_run_variance`). The
    statistic gets the Harvey-Leybourne-Newbold (1997) small-sample correction and
    is compared with Student t with n-1 degrees of freedom. `p_better` is the
    one-sided p-value for "model 1 has the lower expected loss".

    `long_memory`: the long-run variance is the EWC variance with `EWC_DF` cosine
    transforms, each scaled for the differential's estimated memory (`_ewc_test`), and
    the statistic is compared with Student t with `EWC_DF` degrees of freedom (no HLN
    correction: it is exact under the fixed-nu asymptotics). Use it for losses of
    volatility forecasts.
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
    if long_memory:
        return _ewc_test(d, horizon=horizon)
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


EWC_DF = 8  # cosine frequencies (= degrees of freedom) of the long-memory-robust long-run variance
MAX_MEMORY = 0.49  # the largest memory parameter d the correction assumes (0.5: non-stationary)


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


def local_whittle_memory(x: np.ndarray, power: float = 0.65, frequencies: int | None = None) -> float:
    """Robinson's (1995) local Whittle estimate of the memory parameter d of `x` (0: short memory; 0 < d < 0.5:
    long memory, autocorrelations decaying like k^(2d-1)), from the m = n^power lowest Fourier frequencies;
    its standard error is about 1 / (2 sqrt(m)) (0.03 at 4,000 hours)."""
    from scipy.optimize import minimize_scalar

    x = np.asarray(x, dtype=float)
    n = len(x)
    m = max(min(int(n**power), frequencies or n), 8)
    periodogram = np.abs(np.fft.rfft(x - x.mean())[1 : m + 1]) ** 2
    lam = 2 * np.pi * np.arange(1, m + 1) / n
    log_lam = np.log(lam)
    if not np.any(periodogram > 0):
        return 0.0

    def objective(d: float) -> float:
        return float(np.log(np.mean(lam ** (2 * d) * periodogram)) - 2 * d * log_lam.mean())

    result = minimize_scalar(objective, bounds=(-0.49, 0.99), method="bounded")
    return float(result.x)  # pyright: ignore[reportAttributeAccessIssue]


def _fractional_autocorrelation(n: int, d: float) -> np.ndarray:
    """Autocorrelations of ARFIMA(0, d, 0) at lags 0 .. n-1: rho(k) = rho(k-1) (k - 1 + d) / (k - d)."""
    k = np.arange(1, n)
    return np.concatenate([[1.0], np.cumprod((k - 1 + d) / (k - d))])


def memory_scales(n: int, d: float, nu: int = EWC_DF) -> np.ndarray:
    """Var(sqrt(n) mean) / Var(j-th cosine transform), j = 1 .. nu, for fractionally integrated noise with
    memory d, exactly (Toeplitz quadratic forms by circulant embedding). Under short memory every ratio is
    1; with long memory the mean varies more than the low-frequency transforms the EWC variance reads (its
    spectrum rises like frequency^(-2d) towards 0), so each transform's square is scaled up by its ratio."""
    if d <= 0:
        return np.ones(nu)
    rho = _fractional_autocorrelation(n, d)
    circulant = np.fft.rfft(np.concatenate([rho, [0.0], rho[:0:-1]]))
    weights = np.vstack([np.full(n, 1 / np.sqrt(n)), _cosine_weights(n, nu)])
    applied = np.fft.irfft(np.fft.rfft(weights, 2 * n, axis=1) * circulant, 2 * n, axis=1)[:, :n]
    variances = np.einsum("ij,ij->i", weights, applied)
    return variances[0] / variances[1:]


def _ewc_test(d: np.ndarray, nu: int = EWC_DF, horizon: int = 1) -> DMResult:
    """The EWC statistic with each cosine transform scaled by `memory_scales` at the loss differential's own
    local Whittle memory (clipped to [0, MAX_MEMORY]): at d = 0 it is the plain EWC test; under long memory
    the plain test rejects equal forecasts too often (9.8% at 5% for d = 0.45 at 24 h, docs/benchmarks.md)."""
    n, mean = len(d), float(d.mean())
    # the estimate reads frequencies well below 1/horizon: an h-hour forecast's overlap (a moving sum of h
    # hours) bends the spectrum down from about n/h on, which the estimate would take for long memory
    memory = float(np.clip(local_whittle_memory(d, frequencies=n // (4 * horizon)), 0.0, MAX_MEMORY))
    long_run = float(np.mean(ewc_transforms(d, nu) ** 2 * memory_scales(n, memory, nu)))
    label = f"EWC({nu}, d={memory:.2f})"
    if long_run <= 0:
        return DMResult(0.0, 0.5, 1.0, n, mean, label, memory)
    stat = mean / np.sqrt(long_run / n)
    p_better = float(stats.t.cdf(stat, df=nu))
    return DMResult(float(stat), p_better, float(2 * min(p_better, 1 - p_better)), n, mean, label, memory)


@dataclass(frozen=True)
class ConfidenceSet:
    """Hansen, Lunde & Nason's (2011) model confidence set: the forecasters that cannot be told from
    the best at `size` (the set of best forecasters at 1 - size), from `arch.bootstrap.MCS` with the
    range statistic and a stationary block bootstrap of the losses."""

    size: float
    included: list[str]  # the set, best mean loss first
    excluded: list[str]  # in the order they were eliminated
    pvalues: dict[str, float]  # the MCS p-value of each forecaster (in the set when >= size)
    mean_loss: dict[str, float]
    block: int
    reps: int

    def contains(self, name: str) -> bool:
        return name in self.included


def model_confidence_set(
    losses: dict[str, np.ndarray], size: float = 0.10, reps: int = 1000, block: int | None = None, seed: int = 0
) -> ConfidenceSet:
    """The model confidence set of the forecasters whose per-hour `losses` (aligned, same hours) are
    given. `block`: the mean block length of the stationary bootstrap; by default Politis & White's
    optimal length for the loss differentials against the cross-sectional mean loss (the largest over
    the forecasters), at least 24 hours and at most a tenth of the sample."""
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
    return ConfidenceSet(size, included, excluded, pvalues, mean_loss, block, reps)


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
