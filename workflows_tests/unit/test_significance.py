"""Known answers for the inference the volatility verdicts rest on: the long-memory-robust
Diebold-Mariano test keeps its size where loss differentials stay correlated for hundreds of hours
(where the HLN rule, which stops at lag h-1, does not) and still finds a truly better forecast; the
model confidence set keeps the true best of a simulated set and drops a clearly worse one."""

import numpy as np
import pytest
from scipy import signal

from workflows.stats.losses import qlike_losses
from workflows.stats.significance import (
    EWC_DF,
    dm_test,
    ewc_long_run_variance,
    local_whittle_memory,
    memory_scales,
    model_confidence_set,
)


def _long_memory(n: int, d: float, rng: np.random.Generator, burn: int = 2_000) -> np.ndarray:
    """Fractionally integrated noise (ARFIMA(0, d, 0)) by its truncated moving-average weights, unit sd."""
    k = np.arange(1, n + burn)
    weights = np.concatenate([[1.0], np.cumprod((k - 1 + d) / k)])
    x = np.asarray(signal.fftconvolve(rng.standard_normal(n + burn), weights))[burn : n + burn]
    return x / x.std()


def _near_unit_root(n: int, rng: np.random.Generator, phi: float = 0.995, burn: int = 3_000) -> np.ndarray:
    x = np.asarray(signal.lfilter([1.0], [1.0, -phi], rng.standard_normal(n + burn)))[burn:]
    return x / x.std()


def _volatility_world(n: int, horizon: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The true mean variance of the next `horizon` hours and its realised value: a long-memory log
    variance (d = 0.4) and Student-t(5) returns."""
    true = np.exp(0.5 * _long_memory(n + horizon, 0.4, rng)) * 1e-5
    r2 = true * rng.standard_t(5, len(true)) ** 2 * 3 / 5  # unit-variance t(5) shocks
    box = np.ones(horizon) / horizon
    return np.convolve(true, box, "valid")[1 : n + 1], np.convolve(r2, box, "valid")[1 : n + 1]


@pytest.mark.parametrize(("horizon", "errors"), [(1, "near-unit-root"), (24, "near-unit-root"), (24, "long-memory")])
def test_robust_dm_keeps_its_size_under_persistent_loss_differences_and_finds_a_better_forecast(horizon, errors):
    """Two equally good forecasts of a long-memory variance, each off the truth by its own persistent error
    in logs, near-unit-root (AR(1), phi = 0.995) or long-memory (ARFIMA(0, 0.45, 0)): their QLIKE
    differential stays correlated for hundreds of hours. The robust test rejects equality at most 7% of the
    time at 5% (400 replications: a true rate of 5% exceeds 7% with probability under 4%); the HLN rule
    rejects far more often at horizon 1. The truth against the same error, 3,000 hours: found in at least
    90% of replications under long memory; under the near-unit-root error the memory estimate reads its
    persistence as long memory and widens the variance, and the truth is found in at least 65% at 1 h and
    40% at 24 h (the price of the size under long memory; plain EWC: 91% and 93%, docs/benchmarks.md).
    Not covered: long-memory errors at 1 h, where a single hour's squared return buries the memory of the
    differential under noise at every frequency but the lowest few; there the test rejects 8-12% of the
    time (docs/benchmarks.md)."""
    rng = np.random.default_rng(20 + horizon + (errors == "long-memory"))
    n, reps = 3_000, 400

    def error() -> np.ndarray:
        return _near_unit_root(n, rng) if errors == "near-unit-root" else _long_memory(n, 0.45, rng)

    robust, hln, power = [], [], []
    for _ in range(reps):
        true, realised = _volatility_world(n, horizon, rng)
        a = true * np.exp(0.4 * error())
        b = true * np.exp(0.4 * error())
        d = qlike_losses(a, realised) - qlike_losses(b, realised)
        robust.append(dm_test(d, horizon, long_memory=True).p_two_sided < 0.05)
        hln.append(dm_test(d, horizon).p_two_sided < 0.05)
        power.append(dm_test(qlike_losses(true, realised) - qlike_losses(a, realised), horizon, True).p_better < 0.05)
    assert np.mean(robust) <= 0.07
    if horizon == 1:
        assert np.mean(hln) >= 0.10  # the rule the verdicts used before: two to four times its size
    assert np.mean(power) >= {(1, "near-unit-root"): 0.65, (24, "near-unit-root"): 0.4}.get((horizon, errors), 0.9)


def test_ewc_variance_is_the_long_run_variance_of_white_noise_and_is_scale_free():
    rng = np.random.default_rng(1)
    draws = [ewc_long_run_variance(rng.normal(0, 2.0, 2_000)) for _ in range(300)]
    assert np.mean(draws) == pytest.approx(4.0, rel=0.1)  # unbiased for the variance of white noise
    d = rng.normal(0.1, 1.0, 500)
    base = dm_test(d, long_memory=True)
    assert dm_test(d * 1e-6, long_memory=True).statistic == pytest.approx(base.statistic)
    assert base.variance.startswith(f"EWC({EWC_DF}, d=") and dm_test(d).variance == "HLN"


def test_local_whittle_recovers_the_memory_and_the_scales_grow_with_it():
    rng = np.random.default_rng(4)
    for d in (0.0, 0.25, 0.45):
        estimates = [local_whittle_memory(_long_memory(4_000, d, rng)) for _ in range(20)]
        assert np.median(estimates) == pytest.approx(d, abs=0.05)
    assert np.median([local_whittle_memory(rng.normal(size=4_000)) for _ in range(20)]) == pytest.approx(0, abs=0.03)
    # short memory: the plain EWC variance; long memory: the mean varies more than every low-frequency transform,
    # the more so the higher the frequency
    assert np.array_equal(memory_scales(4_000, 0.0), np.ones(EWC_DF))
    scales = memory_scales(4_000, 0.45)
    assert np.all(scales > 1) and np.all(np.diff(scales) > 0)
    assert np.all(memory_scales(4_000, 0.2) < scales)
    # exact: the ratio of the two quadratic forms of the fractional covariance matrix, computed directly
    n, d = 60, 0.3
    lags = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    k = np.arange(1, n)
    rho = np.concatenate([[1.0], np.cumprod((k - 1 + d) / (k - d))])[lags]
    mean_w = np.full(n, 1 / np.sqrt(n))
    cos_w = np.sqrt(2 / n) * np.cos(np.pi * 2 * (np.arange(n) + 0.5) / n)
    assert memory_scales(n, d, 2)[1] == pytest.approx((mean_w @ rho @ mean_w) / (cos_w @ rho @ cos_w))


def test_model_confidence_set_keeps_the_true_best_and_drops_a_clearly_worse_forecast():
    """Forecasts of a persistent variance: the truth, two near-equals (small independent errors), and one
    off by a factor exp(0.8 e) (clearly worse). The 90% set holds the truth and not the clearly worse."""
    rng = np.random.default_rng(3)
    n = 4_000
    true, realised = _volatility_world(n, 24, rng)
    forecasts = {
        "truth": true,
        "near_a": true * np.exp(0.05 * _near_unit_root(n, rng, 0.9)),
        "near_b": true * np.exp(0.05 * _near_unit_root(n, rng, 0.9)),
        "worse": true * np.exp(0.8 * _near_unit_root(n, rng, 0.9)),
    }
    cs = model_confidence_set({k: qlike_losses(v, realised) for k, v in forecasts.items()}, reps=300, seed=0)
    assert cs.contains("truth") and not cs.contains("worse")
    assert cs.pvalues["worse"] < 0.10 <= cs.pvalues["truth"]
    assert set(cs.included) | set(cs.excluded) == set(forecasts)
    # and a set of identical forecasters keeps them all
    same = qlike_losses(true, realised)
    cs_same = model_confidence_set({"x": same, "y": same + 1e-12 * rng.standard_normal(n)}, reps=200)
    assert set(cs_same.included) == {"x", "y"}
