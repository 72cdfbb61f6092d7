"""Attention metrics against values computed by hand on small arrays."""

import math

import numpy as np
import pytest

from workflows.attention import metrics as am

T = 48
UNIFORM = np.full(T, 1 / T)
ONE_HOT_24 = np.eye(T)[T - 24]  # all weight 24 hours ago (position 24)
TWO_PEAK = np.zeros(T)
TWO_PEAK[[T - 1, T - 24]] = 0.5  # half on 1 h ago, half on 24 h ago


def test_uniform():
    m = am.row_metrics(UNIFORM)
    assert m["normalised_entropy"][0] == pytest.approx(1.0)
    assert m["concentration"][0] == pytest.approx(0.0, abs=1e-12)
    assert m["gini"][0] == pytest.approx(0.0, abs=1e-12)
    assert m["effective_hours"][0] == pytest.approx(48.0)
    assert m["max_weight"][0] == pytest.approx(1 / 48)
    assert m["mean_lag"][0] == pytest.approx(24.5)  # mean of 1..48
    assert m["hours_to_50"][0] == 24 and m["hours_to_80"][0] == math.ceil(0.8 * 48)
    assert m["std"][0] == pytest.approx(0.0, abs=1e-15)
    assert m["peaks"][0] == 0


def test_uniform_bucket_arithmetic():
    # 0-12 h and 12-24 h hold 12 of 48 hours each (25%), 24-48 h holds 24 (50%)
    assert am.uniform_bucket_shares(48) == {"0-12h": 0.25, "12-24h": 0.25, "24-48h": 0.5}
    lifts = am.bucket_lifts(UNIFORM)
    assert all(v[0] == pytest.approx(1.0) for v in lifts.values())
    # the reference analysis's 24.7 / 24.6 / 50.6 % are lifts of 0.988 / 0.984 / 1.012: no bias
    reference = {"0-12h": 0.247, "12-24h": 0.246, "24-48h": 0.506}
    uniform = am.uniform_bucket_shares(48)
    assert {k: round(v / uniform[k], 3) for k, v in reference.items()} == {
        "0-12h": 0.988,
        "12-24h": 0.984,
        "24-48h": 1.012,
    }


def test_one_hot():
    m = am.row_metrics(ONE_HOT_24)
    assert m["normalised_entropy"][0] == pytest.approx(0.0, abs=1e-12)
    assert m["concentration"][0] == pytest.approx(1.0)
    assert m["gini"][0] == pytest.approx(47 / 48)
    assert m["effective_hours"][0] == pytest.approx(1.0)
    assert m["mean_lag"][0] == 24
    assert m["hours_to_50"][0] == 24 and m["hours_to_80"][0] == 24
    assert m["share_12-24h"][0] == 1.0 and m["lift_12-24h"][0] == 4.0
    assert m["peaks"][0] == 1
    hours, weights = am.top_k(ONE_HOT_24, 1)
    assert hours[0, 0] == 24 and weights[0, 0] == 1.0


def test_two_peaks():
    m = am.row_metrics(TWO_PEAK)
    assert m["normalised_entropy"][0] == pytest.approx(math.log(2) / math.log(48))
    assert m["effective_hours"][0] == pytest.approx(2.0)
    assert m["mean_lag"][0] == pytest.approx(12.5)
    assert m["hours_to_50"][0] == 1 and m["hours_to_80"][0] == 24
    assert m["peaks"][0] == 2
    assert m["variance"][0] == pytest.approx(np.var(TWO_PEAK))
    assert m["gini"][0] == pytest.approx((2 * 47 - 48 - 1) * 0.5 / 48 + (2 * 48 - 48 - 1) * 0.5 / 48)


def test_summary_over_windows():
    rows = np.stack([UNIFORM, ONE_HOT_24, TWO_PEAK])
    s = am.summarise(rows, k=2)
    assert s.windows == 3 and s.hours == 48
    assert s.normalised_entropy.median == pytest.approx(math.log(2) / math.log(48))
    assert s.top_hours[0] == 24  # the mean profile peaks 24 h ago
    assert s.profile_max_lift == pytest.approx((1 / 48 + 1 + 0.5) / 3 * 48)
    # every per-row metric is carried with its quartiles, bucket shares and lifts included
    entropies = am.normalised_entropy(rows)
    assert s.normalised_entropy.mean == pytest.approx(entropies.mean())
    assert s.normalised_entropy.p25 == pytest.approx(np.percentile(entropies, 25))
    assert set(s.quartiles()) == set(am.row_metrics(rows))  # 48 hours: every bucket
    assert s.quartiles()["share_12-24h"] is s.bucket_shares["12-24h"]
    assert s.bucket_shares["12-24h"].median == pytest.approx(0.5)  # TWO_PEAK: half its weight 24 h ago


def test_summary_of_a_narrow_pool_has_only_its_buckets():
    six = np.full((4, 6), 1 / 6)
    s = am.summarise(six)
    assert set(s.bucket_shares) == set(s.bucket_lifts) == set(s.profile_bucket_lifts) == {"0-12h"}
    assert s.bucket_lifts["0-12h"].median == pytest.approx(1.0) and len(s.mean_profile) == 6


def ar_attention(
    rng: np.random.Generator, n: int, rho: float, noise: float = 0.5, peak: int | None = None, amp: float = 2.0
) -> np.ndarray:
    """Softmax rows whose logits follow an AR(1) over windows (neighbouring windows look alike, as
    overlapping windows do), optionally raised by `amp` at `peak` hours ago."""
    e = rng.normal(0, noise, (n, T))
    z = e.copy()
    for i in range(1, n if rho else 0):
        z[i] = rho * z[i - 1] + np.sqrt(1 - rho**2) * e[i]
    if peak is not None:
        z[:, T - peak] += amp
    w = np.exp(z)
    return w / w.sum(axis=1, keepdims=True)


def true_peak_lift(peak: int, amp: float = 2.0, noise: float = 0.5) -> float:
    """The peaked rows' expected largest mean weight x T (the AR has the iid marginal), by Monte Carlo."""
    return float(ar_attention(np.random.default_rng(123), 100_000, 0.0, noise, peak, amp).mean(axis=0).max() * T)


def test_block_bootstrap_means_known_answers():
    rng = np.random.default_rng(0)
    constant = np.full((300, 4), 2.5)
    assert np.allclose(am.block_bootstrap_means(constant, block=48, resamples=50), 2.5)
    values = rng.normal(size=(1000, 3))
    means = am.block_bootstrap_means(values, block=48, resamples=2000, seed=1)
    assert means.shape == (2000, 3)
    # circular blocks resample every window equally often: centred on the sample mean
    assert np.allclose(means.mean(axis=0), values.mean(axis=0), atol=0.01)
    # iid data: the block bootstrap's standard error is the usual sigma / sqrt(n)
    assert means.std(axis=0) == pytest.approx(values.std(axis=0) / np.sqrt(1000), rel=0.15)
    assert am.block_length(100) == 20 and am.block_length(5000) == 48


def test_peak_lift_interval_covers_the_truth_for_peaked_attention():
    w = ar_attention(np.random.default_rng(1), 2000, rho=0.9, peak=24)
    b = am.profile_intervals(w, resamples=500, seed=0)
    truth = true_peak_lift(24)
    assert b.peak_hour == 24 and b.hours == 48 and b.block == 48
    assert b.peak_lift_ci[0] <= truth <= b.peak_lift_ci[1], (truth, b.peak_lift_ci)
    assert b.peak_lift_ci[0] > 1.5  # and far from uniform


def test_peak_lift_interval_includes_one_for_uniform_noise():
    w = ar_attention(np.random.default_rng(2), 2000, rho=0.9)
    b = am.profile_intervals(w, resamples=500, seed=0)
    assert b.peak_lift > 1.0  # the largest of 48 noisy means always exceeds 1/48 ...
    assert b.peak_lift_ci[0] <= 1.0 <= b.peak_lift_ci[1]  # ... but the interval allows uniform
    for name, (lo, hi) in b.bucket_lift_ci.items():
        assert lo <= 1.0 <= hi, name


def test_blocks_are_needed_for_overlapping_windows():
    """Over repeated draws of autocorrelated windows the block interval covers the true peak lift
    most of the time; resampling windows one by one (block 1) is far too narrow."""
    rng = np.random.default_rng(3)
    truth = true_peak_lift(24)
    cover = {48: 0, 1: 0}
    for r in range(25):
        w = ar_attention(rng, 1000, rho=0.95, peak=24)
        for block in cover:
            lo, hi = am.profile_intervals(w, block=block, resamples=300, seed=r).peak_lift_ci
            cover[block] += lo <= truth <= hi
    assert cover[48] >= 21, cover  # about 95% nominal
    assert cover[1] <= 16, cover


def test_narrow_rows_are_lifted_against_their_own_width():
    six = np.full((10, 6), 1 / 6)  # a 6-hour pool spreading its weight evenly
    assert am.summarise(six).profile_max_lift == pytest.approx(1.0)
    assert am.covered_buckets(6) == ("0-12h",) and am.covered_buckets(24) == ("0-12h", "12-24h")
    b = am.profile_intervals(six, resamples=50)
    assert b.peak_lift == pytest.approx(1.0) and b.peak_lift_ci == pytest.approx((1.0, 1.0))
    day = np.zeros((10, 24))
    day[:, 24 - 10] = 0.5  # half the weight 10 hours ago
    day[:, np.arange(24) != 24 - 10] = 0.5 / 23
    lifts = am.bucket_lifts(day)
    assert set(lifts) == {"0-12h", "12-24h"}
    assert lifts["0-12h"][0] == pytest.approx((0.5 + 11 * 0.5 / 23) / 0.5)
    b = am.profile_intervals(day, resamples=50)
    assert b.peak_hour == 10 and b.peak_lift == pytest.approx(12.0)
