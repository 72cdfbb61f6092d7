"""Known answers for the conformal intervals (workflows.evaluation.conformal)."""

import numpy as np
import pytest

from workflows.evaluation.conformal import (
    adaptive_conformal,
    clipped_quantile,
    conformal_quantile,
    ewma_sigma,
    split_conformal,
)
from workflows.stats.calibration import coverage_test

N, BREAK, CAL = 6000, 3000, slice(1000, 3000)


def _garch_with_break(seed: int) -> np.ndarray:
    """GARCH(1,1) returns with Student-t(8) shocks; the intercept (long-run variance) x9 at BREAK."""
    rng = np.random.default_rng(seed)
    a, b, omega = 0.08, 0.90, 1e-6
    shocks = rng.standard_t(8, N) * np.sqrt(6 / 8)
    r = np.empty(N)
    var = omega / (1 - a - b)
    for t in range(N):
        if t:
            var = omega * (9 if t >= BREAK else 1) + a * r[t - 1] ** 2 + b * var
        r[t] = np.sqrt(var) * shocks[t]
    return r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volatility_scaled_intervals_cover_after_a_regime_break_and_fixed_width_does_not(seed):
    r = _garch_with_break(seed)
    zero = np.zeros(N)
    sigma = ewma_sigma(r)
    after = slice(BREAK, N)
    for level in (0.8, 0.95):
        lo, hi = split_conformal(r[CAL], zero[CAL], sigma[CAL], zero, sigma, level)
        assert coverage_test(r[after], lo[after], hi[after], level).observed == pytest.approx(level, abs=0.02)
        lo, hi = adaptive_conformal(r, zero, sigma, level, start=CAL.start)
        assert coverage_test(r[after], lo[after], hi[after], level).observed == pytest.approx(level, abs=0.02)
        ones = np.ones(N)
        lo, hi = split_conformal(r[CAL], zero[CAL], ones[CAL], zero, ones, level)
        fixed = coverage_test(r[after], lo[after], hi[after], level)
        assert fixed.observed < level - 0.2
        assert fixed.kupiec_p < 1e-6


def test_adaptive_intervals_use_only_past_hours():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(400)
    later = y.copy()
    later[300:] *= 50  # the future changes; intervals up to hour 300 must not
    lo1, hi1 = adaptive_conformal(y, np.zeros(400), np.ones(400), 0.8, start=100)
    lo2, hi2 = adaptive_conformal(later, np.zeros(400), np.ones(400), 0.8, start=100)
    np.testing.assert_array_equal(lo1[:301], lo2[:301])
    np.testing.assert_array_equal(hi1[:301], hi2[:301])
    assert np.isnan(lo1[:100]).all()


def test_ewma_sigma_uses_only_past_returns():
    r = np.random.default_rng(4).standard_normal(200)
    shocked = r.copy()
    shocked[150] = 100.0
    np.testing.assert_array_equal(ewma_sigma(r, warmup=50)[:151], ewma_sigma(shocked, warmup=50)[:151])
    assert ewma_sigma(shocked, warmup=50)[151] > 10


def test_conformal_quantile_finite_sample_rank():
    scores = np.arange(1.0, 10.0)  # nine scores
    assert conformal_quantile(scores, 0.8) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 0.95) == float("inf")  # ceil(9.5) = 10 > 9 scores


def test_a_long_run_of_misses_widens_the_interval_to_the_largest_score_never_to_infinity():
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.normal(size=300), 50 * rng.normal(size=200)])  # the scale jumps 50-fold
    lower, upper = adaptive_conformal(y, np.zeros(500), np.ones(500), 0.95, start=100, gamma=0.05, window=100)
    assert np.all(np.isfinite(lower[100:])) and np.all(np.isfinite(upper[100:]))
    # the level ran out (alpha_t <= 0 after the jump's misses): the widest interval the window supports
    widest = [np.abs(y[t - 100 : t]).max() for t in range(100, 500)]
    assert np.any(np.isclose(upper[100:], widest))
    assert np.all(upper[100:] <= np.array(widest) + 1e-12)
    scores = np.array([1.0, 2.0, 3.0])
    assert clipped_quantile(scores, -0.2) == 3.0 and clipped_quantile(scores, 1.0) == 0.0
    # inside its range: the conformal quantile, the ceil((n + 1) x 0.8) = 81st smallest score
    assert clipped_quantile(np.arange(1.0, 101.0), 0.2) == 81.0
