"""Known-answer tests of the calibration statistics (workflows.stats.calibration)."""

import numpy as np
import pytest

from workflows.stats.calibration import (
    brier_skill,
    christoffersen_independence,
    coverage_test,
    interval_score,
    kupiec,
    pinball_loss,
    reliability_table,
)

REPS = 200
N = 1000


def _rejection_rate(make_misses, test) -> float:
    rng = np.random.default_rng(7)
    return float(np.mean([test(make_misses(rng))[1] < 0.05 for _ in range(REPS)]))


def _iid(rate):
    return lambda rng: rng.random(N) < rate


def _clustered(rng):
    """Misses at the right 20% rate on average, but in runs (a two-state Markov chain)."""
    stay_miss, start_miss = 0.6, 0.1  # stationary miss rate 0.1 / (0.1 + 0.4) = 0.2
    out = np.zeros(N, dtype=bool)
    for t in range(1, N):
        out[t] = rng.random() < (stay_miss if out[t - 1] else start_miss)
    return out


def test_kupiec_accepts_correct_coverage_at_its_size():
    rate = _rejection_rate(_iid(0.2), lambda m: kupiec(m, 0.8))
    assert 0.01 <= rate <= 0.10


def test_kupiec_rejects_mis_coverage():
    # 75% observed against 80% nominal on 1000 hours
    assert _rejection_rate(_iid(0.25), lambda m: kupiec(m, 0.8)) > 0.8


def test_christoffersen_accepts_iid_misses():
    rate = _rejection_rate(_iid(0.2), christoffersen_independence)
    assert 0.01 <= rate <= 0.10


def test_christoffersen_rejects_clustered_misses_that_kupiec_cannot_see():
    assert _rejection_rate(_clustered, christoffersen_independence) > 0.95
    # the miss rate is right on average; Kupiec rejects only somewhat above its size because
    # clustering widens the miss count's spread, far below the independence test's power
    assert _rejection_rate(_clustered, lambda m: kupiec(m, 0.8)) < 0.4


def test_coverage_test_reports_the_figures():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(5000)
    result = coverage_test(y, np.full(5000, -1.2816), np.full(5000, 1.2816), 0.8)
    assert result.observed == pytest.approx(0.8, abs=0.02)
    assert result.misses == int(np.sum(np.abs(y) > 1.2816))
    assert result.conditional_lr == pytest.approx(result.kupiec_lr + result.independence_lr)
    too_narrow = coverage_test(y, np.full(5000, -0.5), np.full(5000, 0.5), 0.8)
    assert too_narrow.kupiec_p < 1e-6 and too_narrow.conditional_p < 1e-6


def test_interval_score_is_smallest_at_the_true_quantiles():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(20000)
    scores = {h: interval_score(y, np.full(y.size, -h), np.full(y.size, h), 0.2) for h in (0.8, 1.2816, 2.0)}
    assert min(scores, key=lambda h: scores[h]) == 1.2816
    # a single outcome 1 above a [0, 1] interval at alpha 0.2: width 1 + 2/0.2 * 1
    assert interval_score(np.array([2.0]), np.array([0.0]), np.array([1.0]), 0.2) == pytest.approx(11.0)


def test_pinball_loss_known_values_and_minimum():
    assert pinball_loss(np.array([1.0]), np.array([0.0]), 0.9) == pytest.approx(0.9)
    assert pinball_loss(np.array([-1.0]), np.array([0.0]), 0.9) == pytest.approx(0.1)
    rng = np.random.default_rng(3)
    y = rng.standard_normal(20000)
    losses = {q: pinball_loss(y, np.full(y.size, q), 0.9) for q in (0.0, 1.2816, 2.5)}
    assert min(losses, key=lambda q: losses[q]) == 1.2816


def _three_class(rng, n=5000):
    """Calibrated informative DOWN/STABLE/UP probabilities and outcomes drawn from them."""
    logits = rng.normal(0, 1.5, size=(n, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    outcome = np.array([rng.choice(3, p=p) for p in probs])
    return probs, outcome


def test_brier_skill_positive_for_calibrated_informative_forecast():
    probs, outcome = _three_class(np.random.default_rng(4))
    result = brier_skill(probs, outcome)
    assert result.skill > 0.1
    assert result.brier < result.base_rate_brier


def test_brier_skill_about_zero_for_the_base_rate_and_negative_for_noise():
    rng = np.random.default_rng(5)
    probs, outcome = _three_class(rng)
    rate = np.bincount(outcome, minlength=3) / outcome.size
    assert brier_skill(np.tile(rate, (outcome.size, 1)), outcome).skill == pytest.approx(0.0, abs=1e-12)
    shuffled = probs[rng.permutation(outcome.size)]  # same marginal, no information
    assert brier_skill(shuffled, outcome).skill < 0


def test_reliability_table_calibrated_vs_overconfident():
    rng = np.random.default_rng(6)
    p = rng.random(20000)
    happened = rng.random(20000) < p
    table = reliability_table(p, happened, bins=10)
    assert sum(b.count for b in table) == 20000
    for b in table:
        assert b.observed_frequency == pytest.approx(b.mean_forecast, abs=0.04)
    overconfident = np.clip(0.5 + 1.8 * (p - 0.5), 0, 1)  # claims more than it knows
    top = reliability_table(overconfident, happened, bins=10)[-1]
    assert top.mean_forecast - top.observed_frequency > 0.1
