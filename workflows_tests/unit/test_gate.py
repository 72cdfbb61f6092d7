"""Known answers for the promotion gate's rule (serving/promotion.py, serving/served_calibration.py).

Synthetic next-hour returns y = 0.3 x signal + N(0, 1) noise; forecasts built so that their MSE is an
exact multiple of the comparator's (noise made orthogonal to the comparator's errors), so the figures
the gate decides on are known in advance."""

import json

import numpy as np
import pytest

from workflows.serving.promotion import (
    LAST_DECISION,
    GateConfig,
    GateDecision,
    decide,
    last_decided_hour,
    record_decision,
    write_pointer,
)
from workflows.serving.served_calibration import direction_check, interval_checks

N = 2000


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(N)
    y = 0.3 * signal + rng.standard_normal(N)
    return y, 0.3 * signal, rng.standard_normal(N)  # returns, a skilled forecast, spare noise


def _worse_by(y, forecast, excess, noise):
    """`forecast` plus noise orthogonal to its errors, scaled so that its MSE is exactly (1 + excess) x forecast's."""
    e = forecast - y
    u = noise - (noise @ e) / (e @ e) * e
    return forecast + u * np.sqrt(excess * np.mean(e**2) / np.mean(u**2))


# --- accuracy: the first promotion ------------------------------------------------------------------------------


def test_first_promotion_refuses_a_model_half_a_percent_worse_than_zero(series):
    y, _, noise = series
    f = _worse_by(y, np.zeros(N), 0.005, noise)
    d = decide(y, f, None)
    assert d.mse_zero is not None and d.skill_vs_zero is not None
    assert d.mse_candidate == pytest.approx(1.005 * d.mse_zero) and d.skill_vs_zero == pytest.approx(-0.005)
    # the old rule (non-inferior to zero within 2%) promoted it: its upper bound is inside the margin
    assert d.upper_excess_vs_zero < 0.02 and d.p_zero_better > 0.05
    assert not d.promoted and d.p_better_than_zero > 0.5 and d.comparator == "zero-return forecast"
    assert d.reason.startswith("not significantly more accurate than the zero-return forecast on 2000 fresh")
    assert "skill -0.50%" in d.reason


def test_first_promotion_accepts_a_model_that_beats_zero(series):
    y, skilled, _ = series
    d = decide(y, skilled, None)
    assert d.promoted and d.basis == "superior" and d.p_better_than_zero < 1e-6
    assert d.skill_vs_zero is not None and d.resolvable_excess is not None
    assert d.skill_vs_zero > d.resolvable_excess > 0
    assert d.reason.startswith("significantly more accurate than the zero-return forecast on 2000 fresh")


# --- accuracy: challenger vs champion ---------------------------------------------------------------------------


def test_margin_is_capped_at_the_resolvable_difference(series):
    """0.5% worse than the incumbent: within the configured 2% at the 95% bound (the old rule promoted it), but
    the hours resolve only about 0.8%, and the bound exceeds that."""
    y, skilled, noise = series
    f_c = _worse_by(y, skilled, 0.005, noise)
    d = decide(y, f_c, skilled)
    assert d.mse_current is not None and d.mse_candidate == pytest.approx(1.005 * d.mse_current)
    assert d.upper_excess_vs_current is not None and d.resolvable_excess is not None
    assert d.upper_excess_vs_current < d.margin == 0.02  # non-inferior within the configured margin ...
    assert d.margin_used == d.resolvable_excess < d.upper_excess_vs_current  # ... not within what the hours resolve
    assert not d.promoted and d.p_noninferior_to_current > 0.05
    assert d.reason.startswith("neither significantly more accurate than the incumbent")
    assert f"the 2.0% ceiling capped at the {d.resolvable_excess:.2%} these hours resolve" in d.reason
    # a configured margin below the resolvable one is used as it is
    tight = decide(y, f_c, skilled, GateConfig(margin=0.001))
    assert tight.margin_used == 0.001


def test_a_near_tie_is_non_inferior_and_a_better_challenger_superior(series):
    y, skilled, noise = series
    tie = decide(y, _worse_by(y, skilled, 0.0001, noise), skilled)  # 0.01% worse: well inside what the hours resolve
    assert tie.mse_current is not None and tie.mse_candidate == pytest.approx(1.0001 * tie.mse_current)
    assert tie.upper_excess_vs_current is not None and tie.margin_used is not None
    assert tie.promoted and tie.basis == "non-inferior" and tie.upper_excess_vs_current < tie.margin_used
    better = decide(y, skilled, 0.5 * skilled)  # the full signal against half of it
    assert better.promoted and better.basis == "superior" and better.p_better_than_current < 0.05
    assert better.reason.startswith("significantly more accurate than the incumbent on 2000 fresh")


# --- calibration of the served intervals and probabilities ------------------------------------------------------


def _vol_break(rng, n):
    """Returns whose volatility triples after the first 30% of the hours (the calibration hours), with a strongly
    skilled forecast."""
    vol = np.where(np.arange(n) < int(0.3 * n), 1.0, 3.0)
    signal = rng.standard_normal(n)
    return 0.6 * vol * signal + vol * rng.standard_normal(n), 0.6 * vol * signal, vol


def test_intervals_too_narrow_after_a_volatility_rise_are_refused_and_tracking_ones_accepted():
    y, f, vol = _vol_break(np.random.default_rng(1), 200)
    narrow = decide(y, f, None, sd_candidate=np.ones(200))  # the scale misses the rise: the intervals lag it
    assert narrow.coverage_80 is not None and narrow.kupiec_p_80 is not None
    assert narrow.coverage_80 < 0.72 and narrow.kupiec_p_80 < 0.05 and narrow.raw_coverage_80 < 0.5
    assert not narrow.promoted and narrow.p_better_than_zero < 0.05  # accurate enough, badly calibrated
    assert narrow.reason.startswith(
        f"the served 80% interval fails Kupiec's coverage test on 140 hours: coverage {narrow.coverage_80:.1%}"
    )
    assert narrow.calibration_hours == 60 and narrow.coverage_hours == 140
    tracking = decide(y, f, None, sd_candidate=vol)  # a scale that follows the volatility
    assert tracking.promoted, tracking.reason
    assert tracking.kupiec_p_80 > 0.05 and tracking.kupiec_p_95 > 0.05 and tracking.christoffersen_p_80 > 0.05
    # the Gaussian interval of a scale twice too large over-covers; the conformal quantile halves it back
    wide = decide(y, f, None, sd_candidate=2 * vol)
    assert wide.raw_coverage_80 > 0.95 and wide.coverage_80 == tracking.coverage_80 and wide.promoted
    assert wide.conformal_q80 == pytest.approx(tracking.conformal_q80 / 2)


def test_online_conformal_keeps_long_series_within_two_points():
    """2,000 hours, a volatility doubling halfway that the scale follows: 80% and 95% coverage within 2 points."""
    rng = np.random.default_rng(3)
    vol = np.where(np.arange(N) < N // 2, 1.0, 2.0)
    y = vol * rng.standard_normal(N)
    checks = interval_checks(y, np.zeros(N), vol)
    assert abs(checks[0.8].coverage - 0.8) < 0.02 and abs(checks[0.95].coverage - 0.95) < 0.02
    assert all(c.failure(0.05) is None for c in checks.values())


def test_clustered_misses_fail_christoffersen():
    """Volatility alternating in 50-hour blocks that the scale ignores: about the right share of misses overall,
    all in the loud blocks."""
    rng = np.random.default_rng(2)
    vol = np.where((np.arange(N) // 50) % 2 == 0, 0.6, 1.3)
    y = vol * rng.standard_normal(N)
    checks = interval_checks(y, np.zeros(N), np.ones(N))
    assert abs(checks[0.8].coverage - 0.8) < 0.05 and checks[0.8].kupiec_p > 0.01
    assert checks[0.8].christoffersen_p < 1e-3
    assert "Christoffersen's independence test" in (checks[0.8].failure(0.05) or "")
    assert interval_checks(y, np.zeros(N), vol)[0.8].failure(0.05) is None  # the same hours, scaled: passes


def test_direction_probabilities_worse_than_the_base_rate_are_refused(series):
    y, skilled, _ = series
    threshold = 0.5
    classes = np.where(y < -threshold, 0, np.where(y > threshold, 2, 1))
    rate = np.bincount(classes, minlength=3) / N
    confident_wrong = np.eye(3)[(classes + 1) % 3] * 0.8 + 0.2 / 3  # 87% on a class that did not happen
    good = decide(y, skilled, None, probs_candidate=np.tile(rate, (N, 1)), direction_threshold=threshold)
    assert good.promoted and good.brier == pytest.approx(good.brier_base_rate)
    bad = decide(y, skilled, None, probs_candidate=confident_wrong, direction_threshold=threshold)
    assert bad.brier is not None and bad.brier_base_rate is not None and bad.p_base_rate_better is not None
    assert bad.brier > bad.brier_base_rate and bad.p_base_rate_better < 1e-6 and not bad.promoted
    assert bad.reason.startswith("the served direction probabilities are significantly worse than the base-rate")
    assert f"Brier {bad.brier:.4f} vs {bad.brier_base_rate:.4f}" in bad.reason
    assert direction_check(np.eye(3)[classes] * 0.9 + 0.1 / 3, classes).skill > 0.5  # sharp and right


# --- fresh hours ---------------------------------------------------------------------------------------------


def test_the_last_decided_hour_is_recorded_and_read_back(tmp_path):
    assert last_decided_hour(tmp_path) is None  # the first decision: every hour counts
    d = GateDecision(False, "r", 300, mse_candidate=1.0, first_hour="2026-01-01T00:00", last_hour="2026-01-13T11:00")
    assert d.decided and not GateDecision(False, "too few", 20).decided
    record_decision(tmp_path, "/x/candidate.pt", d)
    stored = json.loads((tmp_path / LAST_DECISION).read_text())
    assert stored["decided_through"] == "2026-01-13T11:00" and stored["candidate"] == "candidate.pt"
    through = last_decided_hour(tmp_path)
    assert through is not None
    # a promotion written later (its pointer's record) moves the mark forward; an older one does not move it back
    (tmp_path / "m.pt").write_bytes(b"")
    later = GateDecision(True, "r", 300, mse_candidate=1.0, last_hour="2026-01-20T00:00")
    write_pointer(tmp_path, str(tmp_path / "m.pt"), "0" * 64, later)
    assert last_decided_hour(tmp_path) == through + 6 * 24 + 13
    record_decision(tmp_path, "/x/c.pt", d)
    assert last_decided_hour(tmp_path) == through + 6 * 24 + 13
