"""Attention-pattern metrics over rows of weights, one weight per input hour.

Convention: a row `w` has T weights for input positions 0 (oldest) .. T-1 (newest);
position p is `T - p` hours before the predicted hour ("hours ago", 1 .. T).
All functions take an array of shape (N, T) (or (T,)) and return one value per row.

Definitions (H = -sum w ln w, natural log):
* normalised entropy  H / ln T            (1 = uniform, 0 = one hour)
* concentration       1 - H / ln T
* Gini                sum_i (2i - T - 1) w_(i) / (T sum w), weights sorted ascending
                      (0 = uniform, (T-1)/T = one hour)
* effective hours     exp(H)              (T = uniform, 1 = one hour)
* bucket shares       0-12 h, 12-24 h, 24-48 h ago, i.e. hours ago 1-12, 13-24, 25-48;
                      lift = share / the share a uniform row gives the bucket
* mean lag            sum w * hours_ago
* hours to q          fewest most-recent hours holding at least q of the weight
* peaks               local maxima above twice the uniform weight

A row may be narrower than 48 hours (a multi-scale pool that sees only its last s
hours): every "uniform" reference is then 1/s, and only the buckets the row covers
are reported.

Intervals (`profile_intervals`) come from a circular block bootstrap over windows
(Politis & Romano 1992): neighbouring windows share 47 of their 48 input hours, so
windows are resampled in blocks of consecutive windows (48 by default), not one by
one. See `profile_intervals` for why the peak's interval is a simultaneous band.
"""

from dataclasses import dataclass

import numpy as np

BUCKETS = ((1, 12), (13, 24), (25, 48))
BUCKET_NAMES = ("0-12h", "12-24h", "24-48h")


def _rows(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return w[None, :] if w.ndim == 1 else w


def hours_ago(t: int) -> np.ndarray:
    return np.arange(t, 0, -1)  # position 0 is T hours ago, position T-1 is 1 hour ago


def entropy(weights: np.ndarray) -> np.ndarray:
    w = _rows(weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(w > 0, w * np.log(w), 0.0)
    return -terms.sum(axis=1)


def normalised_entropy(weights: np.ndarray) -> np.ndarray:
    w = _rows(weights)
    return entropy(w) / np.log(w.shape[1])


def concentration(weights: np.ndarray) -> np.ndarray:
    return 1.0 - normalised_entropy(weights)


def gini(weights: np.ndarray) -> np.ndarray:
    w = np.sort(_rows(weights), axis=1)
    t = w.shape[1]
    i = np.arange(1, t + 1)
    return ((2 * i - t - 1) * w).sum(axis=1) / (t * w.sum(axis=1))


def effective_hours(weights: np.ndarray) -> np.ndarray:
    return np.exp(entropy(weights))


def bucket_shares(weights: np.ndarray) -> dict[str, np.ndarray]:
    w = _rows(weights)
    ago = hours_ago(w.shape[1])
    return {name: w[:, (ago >= lo) & (ago <= hi)].sum(axis=1) for name, (lo, hi) in zip(BUCKET_NAMES, BUCKETS)}


def uniform_bucket_shares(t: int = 48) -> dict[str, float]:
    ago = hours_ago(t)
    return {name: float(((ago >= lo) & (ago <= hi)).sum() / t) for name, (lo, hi) in zip(BUCKET_NAMES, BUCKETS)}


def covered_buckets(t: int) -> tuple[str, ...]:
    """The buckets a row of t hours can put weight in (a 24-hour pool has no 24-48 h bucket)."""
    return tuple(name for name, share in uniform_bucket_shares(t).items() if share > 0)


def bucket_lifts(weights: np.ndarray) -> dict[str, np.ndarray]:
    """Share / uniform share, for the buckets the row covers."""
    t = _rows(weights).shape[1]
    uniform = uniform_bucket_shares(t)
    return {name: share / uniform[name] for name, share in bucket_shares(weights).items() if uniform[name] > 0}


def mean_lag(weights: np.ndarray) -> np.ndarray:
    w = _rows(weights)
    return (w * hours_ago(w.shape[1])).sum(axis=1) / w.sum(axis=1)


def hours_to_mass(weights: np.ndarray, q: float) -> np.ndarray:
    w = _rows(weights)[:, ::-1]  # most recent first
    cumulative = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    return (cumulative < q - 1e-12).sum(axis=1) + 1


def top_k(weights: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(hours ago, weight) of the k largest weights of each row, largest first."""
    w = _rows(weights)
    order = np.argsort(-w, axis=1, kind="stable")[:, :k]
    return hours_ago(w.shape[1])[order], np.take_along_axis(w, order, axis=1)


def peaks(weights: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Number of local maxima above `factor` x the uniform weight, per row."""
    w = _rows(weights)
    t = w.shape[1]
    padded = np.pad(w, ((0, 0), (1, 1)), constant_values=-np.inf)
    local_max = (w >= padded[:, :-2]) & (w > padded[:, 2:])
    return (local_max & (w > factor / t)).sum(axis=1)


def row_metrics(weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-row metric, keyed by name."""
    w = _rows(weights)
    out = {
        "normalised_entropy": normalised_entropy(w),
        "concentration": concentration(w),
        "gini": gini(w),
        "effective_hours": effective_hours(w),
        "max_weight": w.max(axis=1),
        "mean_lag": mean_lag(w),
        "hours_to_50": hours_to_mass(w, 0.5).astype(float),
        "hours_to_80": hours_to_mass(w, 0.8).astype(float),
        "std": w.std(axis=1),
        "variance": w.var(axis=1),
        "peaks": peaks(w).astype(float),
    }
    for name, share in bucket_shares(w).items():
        out[f"share_{name}"] = share
    for name, lift in bucket_lifts(w).items():
        out[f"lift_{name}"] = lift
    return out


@dataclass(frozen=True)
class Quartiles:
    """One per-row metric over windows: median, interquartile bounds and mean."""

    median: float
    p25: float
    p75: float
    mean: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Quartiles":
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        return cls(median=float(q50), p25=float(q25), p75=float(q75), mean=float(np.mean(values)))


# The per-row metrics `AttentionSummary` carries as `Quartiles`, in `row_metrics` order.
SUMMARY_METRICS = (
    "normalised_entropy",
    "concentration",
    "gini",
    "effective_hours",
    "max_weight",
    "mean_lag",
    "hours_to_50",
    "hours_to_80",
    "std",
    "variance",
    "peaks",
)


@dataclass(frozen=True)
class AttentionSummary:
    """Rows of attention weights summarised: each per-row metric's quartiles over windows, and the
    mean profile with its top hours. `bucket_shares` / `bucket_lifts` hold only the buckets the rows
    cover (a 24-hour pool has no 24-48 h bucket); `profile_*` fields describe the mean profile."""

    windows: int
    hours: int
    normalised_entropy: Quartiles
    concentration: Quartiles
    gini: Quartiles
    effective_hours: Quartiles
    max_weight: Quartiles
    mean_lag: Quartiles
    hours_to_50: Quartiles
    hours_to_80: Quartiles
    std: Quartiles
    variance: Quartiles
    peaks: Quartiles
    bucket_shares: dict[str, Quartiles]
    bucket_lifts: dict[str, Quartiles]
    mean_profile: tuple[float, ...]  # mean weight per position, oldest first
    top_hours: tuple[int, ...]  # hours ago of the mean profile's k largest weights, largest first
    top_weights: tuple[float, ...]
    profile_max_lift: float  # the mean profile's largest weight x hours
    profile_bucket_lifts: dict[str, float]

    def quartiles(self) -> dict[str, Quartiles]:
        """Every per-row metric by name (bucket shares and lifts as `share_<bucket>`, `lift_<bucket>`)."""
        out = {name: getattr(self, name) for name in SUMMARY_METRICS}
        out.update({f"share_{b}": q for b, q in self.bucket_shares.items()})
        out.update({f"lift_{b}": q for b, q in self.bucket_lifts.items()})
        return out


def summarise(weights: np.ndarray, k: int = 5) -> AttentionSummary:
    """Quartiles over rows of every per-row metric, plus the mean profile's top-k hours."""
    w = _rows(weights)
    rows = row_metrics(w)
    profile = w.mean(axis=0)
    ago, top = top_k(profile, k)
    covered = covered_buckets(w.shape[1])
    return AttentionSummary(
        windows=int(w.shape[0]),
        hours=int(w.shape[1]),
        **{name: Quartiles.of(rows[name]) for name in SUMMARY_METRICS},
        bucket_shares={name: Quartiles.of(v) for name, v in bucket_shares(w).items() if name in covered},
        bucket_lifts={name: Quartiles.of(v) for name, v in bucket_lifts(w).items()},
        mean_profile=tuple(float(x) for x in profile),
        top_hours=tuple(int(a) for a in ago[0]),
        top_weights=tuple(float(x) for x in top[0]),
        profile_max_lift=float(profile.max() * w.shape[1]),
        profile_bucket_lifts={n: float(v[0]) for n, v in bucket_lifts(profile).items()},
    )


DEFAULT_BLOCK = 48  # neighbouring windows overlap by 47 of 48 hours
DEFAULT_RESAMPLES = 1000
LEVEL = 0.95


def block_length(n: int, block: int = DEFAULT_BLOCK) -> int:
    """The block length used for n windows: `block`, but at most n // 5 so there are at least five blocks."""
    return int(max(1, min(block, n // 5)))


def block_bootstrap_means(
    values: np.ndarray, block: int = DEFAULT_BLOCK, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """Circular block bootstrap of the mean over axis 0 (windows in time order).

    Each resample joins ceil(N / b) blocks of b consecutive windows with uniformly drawn
    starts (wrapping around the end), cut to N windows, and takes the mean; the result
    has shape (resamples, *values.shape[1:]). Block sums come from one cumulative sum,
    so a resample costs ceil(N / b) additions instead of N.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[0]
    b = block_length(n, block)
    flat = v.reshape(n, -1)
    extended = np.concatenate([flat, flat[:b]])
    cum = np.concatenate([np.zeros((1, flat.shape[1])), np.cumsum(extended, axis=0)])
    n_blocks = -(-n // b)
    last = n - (n_blocks - 1) * b  # the last block is cut so every resample has exactly n windows
    full_sums = cum[b : b + n] - cum[:n]  # sum of the b windows starting at each index
    last_sums = cum[last : last + n] - cum[:n]
    starts = np.random.default_rng(seed).integers(0, n, size=(resamples, n_blocks))
    total = full_sums[starts[:, :-1]].sum(axis=1) + last_sums[starts[:, -1]]
    return (total / n).reshape((resamples, *v.shape[1:]))


def ratio_interval(
    numerator: np.ndarray,
    denominator: np.ndarray,
    block: int = DEFAULT_BLOCK,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile block-bootstrap interval of sum(numerator) / sum(denominator) over windows."""
    means = block_bootstrap_means(np.stack([numerator, denominator], axis=1), block, resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = means[:, 0] / means[:, 1]
    lo, hi = np.percentile(ratios, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class ProfileBootstrap:
    """Block-bootstrap intervals for one attention map's mean profile over `hours` hours.

    Lifts are relative to the map's own width: uniform is 1/hours, so a 6-hour pool
    spreading its weight evenly has lift 1, not 8.
    """

    windows: int
    hours: int
    block: int
    resamples: int
    level: float
    peak_hour: int  # hours ago of the mean profile's largest weight
    peak_lift: float  # that weight x hours
    peak_lift_ci: tuple[float, float]  # simultaneous band at the largest weight: an interval for the true peak
    bucket_lifts: dict[str, float]
    bucket_lift_ci: dict[str, tuple[float, float]]  # simultaneous over the buckets


def profile_intervals(
    weights: np.ndarray,
    block: int = DEFAULT_BLOCK,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> ProfileBootstrap:
    """Peak lift and bucket lifts of the mean profile of rows (N, T), with block-bootstrap intervals.

    The peak hour is chosen by the data, so a pointwise interval at that hour (or a
    percentile interval of the bootstrapped maximum) sits above the truth: on exactly
    uniform attention it excludes 1 most of the time. The peak's interval is instead
    read off a simultaneous band (studentised max-|t| over the T hours, Romano-Wolf
    style): every hour's mean weight lies within mean +- q * se with probability
    `level`, q the `level` quantile of max_j |m*_j - m_j| / se_j over resamples, so
    [max_j(m_j - q se_j), max_j(m_j + q se_j)] x T covers the true largest weight with
    at least that probability. The bucket lifts get the same kind of band over the
    buckets (up to three comparisons with 1, made together).
    """
    w = _rows(weights)
    n, t = w.shape
    profile = w.mean(axis=0)
    boots = block_bootstrap_means(w, block, resamples, seed)  # (R, T)
    lo, hi = _simultaneous_band(profile, boots, level)
    ago, _ = top_k(profile, 1)
    uniform = uniform_bucket_shares(t)
    ago_all = hours_ago(t)
    names = [name for name in BUCKET_NAMES if uniform[name] > 0]
    masks = [
        (ago_all >= lo_h) & (ago_all <= hi_h) for name, (lo_h, hi_h) in zip(BUCKET_NAMES, BUCKETS) if uniform[name] > 0
    ]
    scale = np.array([uniform[n] for n in names])
    lifts = np.array([profile[m].sum() for m in masks]) / scale
    boot_lifts = np.stack([boots[:, m].sum(axis=1) for m in masks], axis=1) / scale  # (R, buckets)
    b_lo, b_hi = _simultaneous_band(lifts, boot_lifts, level)
    return ProfileBootstrap(
        windows=int(n),
        hours=int(t),
        block=block_length(n, block),
        resamples=int(resamples),
        level=float(level),
        peak_hour=int(ago[0, 0]),
        peak_lift=float(profile.max() * t),
        peak_lift_ci=(float(max(lo.max(), 0.0) * t), float(hi.max() * t)),
        bucket_lifts={k: float(v) for k, v in zip(names, lifts)},
        bucket_lift_ci={k: (float(max(a, 0.0)), float(c)) for k, a, c in zip(names, b_lo, b_hi)},
    )


def _simultaneous_band(estimate: np.ndarray, boots: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """estimate -+ q * se with q the `level` quantile of the resamples' max |t| over components."""
    se = np.maximum(boots.std(axis=0, ddof=1), 1e-15)
    q = float(np.quantile(np.max(np.abs(boots - estimate) / se, axis=1), level))
    return estimate - q * se, estimate + q * se
