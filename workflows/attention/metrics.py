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
"""

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


def bucket_lifts(weights: np.ndarray) -> dict[str, np.ndarray]:
    t = _rows(weights).shape[1]
    uniform = uniform_bucket_shares(t)
    return {name: share / uniform[name] for name, share in bucket_shares(weights).items()}


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


def summarise(weights: np.ndarray, k: int = 5) -> dict:
    """Medians and interquartile ranges over rows, plus the mean profile's top-k hours."""
    w = _rows(weights)
    summary: dict = {"windows": int(w.shape[0]), "hours": int(w.shape[1])}
    for name, values in row_metrics(w).items():
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        summary[name] = {"median": float(q50), "p25": float(q25), "p75": float(q75), "mean": float(values.mean())}
    profile = w.mean(axis=0)
    ago, top = top_k(profile, k)
    summary["mean_profile"] = profile.tolist()
    summary["top_hours"] = [int(a) for a in ago[0]]
    summary["top_weights"] = [float(x) for x in top[0]]
    summary["profile_max_lift"] = float(profile.max() * w.shape[1])
    summary["profile_bucket_lifts"] = {n: float(v[0]) for n, v in bucket_lifts(profile).items()}
    return summary
