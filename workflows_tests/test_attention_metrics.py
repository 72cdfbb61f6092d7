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
    assert {k: round(v / uniform[k], 3) for k, v in reference.items()} == {"0-12h": 0.988, "12-24h": 0.984, "24-48h": 1.012}


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
    assert s["windows"] == 3
    assert s["normalised_entropy"]["median"] == pytest.approx(math.log(2) / math.log(48))
    assert s["top_hours"][0] == 24  # the mean profile peaks 24 h ago
    assert s["profile_max_lift"] == pytest.approx((1 / 48 + 1 + 0.5) / 3 * 48)
