"""Known answers for the calibration evidence of the evaluation: direction probabilities against the base
rate (`probability_calibration`) and intervals calibrated on the model's own sd (the served intervals)."""

import numpy as np
import pytest

from workflows.evaluation.evidence import (
    EXPANDING_RATE,
    OWN_SD,
    TRAINING_RATE,
    VOLATILITY_MODEL,
    ForecastSet,
    evaluate_forecasts,
    interval_calibration,
    probability_calibration,
)
from workflows.stats.calibration import expanding_base_rate

N = 6000
BASE = np.array([0.25, 0.5, 0.25])


def _calibrated(rng, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """An informative forecaster whose probabilities are the true ones: each hour's class is drawn from them."""
    probs = rng.dirichlet(4 * BASE, n)  # varies from hour to hour around the base rate
    outcome = np.array([rng.choice(3, p=p) for p in probs])
    return probs, outcome


def test_a_calibrated_informative_forecaster_beats_the_base_rate():
    rng = np.random.default_rng(0)
    probs, outcome = _calibrated(rng)
    pc = probability_calibration(probs, outcome, np.tile(BASE, (N, 1)))
    assert pc.base_rate_source == TRAINING_RATE
    assert pc.skill > 0.05 and pc.dm.p_better < 1e-3 and pc.beats_base_rate
    assert pc.brier < pc.base_rate_brier and pc.n == N
    assert pc.dm.variance.startswith("MAC")  # the long-memory-robust test


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_noise_forecaster_does_not_beat_the_base_rate(seed):
    rng = np.random.default_rng(seed)
    outcome = rng.choice(3, size=N, p=BASE)  # nothing to forecast: the classes are drawn from the base rate
    noise = rng.dirichlet(4 * BASE, N)  # probabilities that vary, but with nothing
    pc = probability_calibration(noise, outcome, np.tile(BASE, (N, 1)))
    assert pc.skill < 0 and pc.dm.p_better > 0.5 and not pc.beats_base_rate


def test_the_reliability_table_of_a_calibrated_forecaster_lies_on_the_diagonal():
    rng = np.random.default_rng(4)
    probs, outcome = _calibrated(rng, 20000)
    pc = probability_calibration(probs, outcome, np.tile(BASE, (20000, 1)))
    assert set(pc.reliability) == {"DOWN", "STABLE", "UP"}
    for bins in pc.reliability.values():
        assert sum(b.count for b in bins) == 20000
        for b in bins:
            if b.count >= 400:  # binomial sd at most 0.025: 3 sd
                assert b.observed_frequency == pytest.approx(b.mean_forecast, abs=0.075)
    # an over-confident forecaster (probabilities pushed away from the base rate) is off the diagonal
    sharp = probs**3 / (probs**3).sum(axis=1, keepdims=True)
    top = [b for b in probability_calibration(sharp, outcome).reliability["STABLE"] if b.count >= 400][-1]
    assert top.mean_forecast - top.observed_frequency > 0.1


def test_without_a_training_rate_the_base_rate_is_the_expanding_past_one():
    rng = np.random.default_rng(5)
    probs, outcome = _calibrated(rng, 2000)
    pc = probability_calibration(probs, outcome)
    assert pc.base_rate_source == EXPANDING_RATE
    # each hour's base rate uses only earlier hours: changing later outcomes leaves it unchanged
    changed = outcome.copy()
    changed[1000:] = 0
    np.testing.assert_array_equal(expanding_base_rate(outcome, 3)[:1001], expanding_base_rate(changed, 3)[:1001])
    assert expanding_base_rate(outcome, 3)[0] == pytest.approx([1 / 3] * 3)
    counts = np.bincount(outcome[:10], minlength=3)
    assert expanding_base_rate(outcome, 3)[10] == pytest.approx((counts + 1) / 13)


def _garch_with_break(rng, n: int = N, brk: int = N // 2) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) returns with Student-t(8) shocks whose long-run variance x9 at `brk`; and their variance."""
    a, b, omega = 0.08, 0.90, 1e-6
    shocks = rng.standard_t(8, n) * np.sqrt(6 / 8)
    r, var = np.empty(n), np.empty(n)
    v = omega / (1 - a - b)
    for t in range(n):
        if t:
            v = omega * (9 if t >= brk else 1) + a * r[t - 1] ** 2 + b * v
        var[t], r[t] = v, np.sqrt(v) * shocks[t]
    return r, var


@pytest.mark.parametrize("seed", [0, 1])
def test_an_interval_twice_too_wide_calibrated_on_the_models_own_sd_covers_across_a_regime_break(seed):
    """Scaled by the model's own sd (the served scale), twice the true one: before calibration the Gaussian
    interval covers far too much; after, within 2 points of nominal across a regime break."""
    rng = np.random.default_rng(seed)
    r, var = _garch_with_break(rng)
    cal = interval_calibration(np.zeros(N), r, 4 * var)
    for pct, c in cal.items():
        assert c.scale == OWN_SD
        assert c.before.observed > pct / 100 + 0.04 and c.before.kupiec_p < 1e-6
        assert c.after.observed == pytest.approx(pct / 100, abs=0.02)


def test_the_evaluation_scores_probabilities_and_calibrates_every_interval_on_the_models_own_sd():
    """The volatility model's forecasts do not change any model's intervals: they are the served ones, scaled by
    the model's own sd (the volatility model's sd of the hour being served is not in the forecast log)."""
    rng = np.random.default_rng(6)
    r, var = _garch_with_break(rng, 3000, 1500)
    probs, outcome = _calibrated(rng, 3000)
    ts = np.arange(3000).astype("datetime64[h]").astype("datetime64[us]")
    fs = ForecastSet(ts, np.ones(3000, int), r, np.zeros(3000), var, direction=outcome)
    fs.base_rates = np.tile(BASE, (3000, 1))
    fs.returns = {"multitask": np.zeros(3000), "ensemble": np.zeros(3000), "ridge_ar48": np.zeros(3000)}
    fs.variances = {"multitask": var * 4, "ensemble": np.full(3000, 1e-8)}
    fs.probabilities["multitask"] = probs
    without = evaluate_forecasts(fs, "test", [], {})
    fs.next_var[VOLATILITY_MODEL] = var
    ev = evaluate_forecasts(fs, "test", [], {})
    assert set(ev.probabilities) == {"multitask"} and ev.probabilities["multitask"].beats_base_rate
    assert {n for n, m in ev.returns.items() if m.calibration} == {"multitask", "ensemble"}
    for name in ("multitask", "ensemble"):
        assert ev.returns[name].calibration == without.returns[name].calibration
        assert all(c.scale == OWN_SD for c in ev.returns[name].calibration.values())
    assert ("multitask", "probabilities.skill", ev.probabilities["multitask"].skill) in ev.rows()
