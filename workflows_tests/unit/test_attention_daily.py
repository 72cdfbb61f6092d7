"""A day that costs a day: the month's attention evidence appended for new hours equals a full recomputation,
except the month's permutation nulls, which are redrawn weekly and when the month closes and carry their date."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from workflows.attention import period_run
from workflows.attention.analysis import Protocol
from workflows.attention.period_run import analyse_period, nulls_due, rows
from workflows.attention.periods import PeriodEvidence, load_evidence, pool
from workflows.attention.sanity import DeletionEvidence
from workflows.ml.models import ArchConfig
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.reporting.attention_text import _deletion_sentences
from workflows_tests.unit.test_attention_analysis import checkpoint
from workflows_tests.unit.test_attention_sanity import tiny_data

pytestmark = pytest.mark.usefixtures("one_thread")
ARCH = ArchConfig("query_attention_lstm", 3, {"hidden": 16, "d_attn": 8, "scales": [6, 24, 48]})
PROTOCOL = Protocol(deletion_draws=19, random_draws=19, deletion_windows=1_000, resamples=200)
DECEMBER = ForecastPeriod.from_key("2025-12-01")  # 744 hours
NULLS = ("matched_sums", "overlap_sums", "random_sums")


def _month(n: int):
    """A month's windows (the first `n` of 744 are logged) and its one model, fixed across days."""
    full = tiny_data(n_test=DECEMBER.hours)
    torch.manual_seed(0)
    ckpt = checkpoint(ARCH.build(), ARCH, full)
    return ckpt, full


def _run(tmp_path, folder: str, ckpt, data, n: int):
    """`period_attention`'s work on the month's first `n` windows; its controls kept in one store for every run
    (as the month's are), so a full recomputation and the appended evidence read the same trained control."""
    day = replace(data, test=rows(data.test, 0, n))
    out = analyse_period(
        {"attention_lstm": (ckpt, day)},
        {"attention_lstm": "a" * 64},
        DECEMBER,
        tmp_path / folder,
        tmp_path / "checkpoints",
        PeriodConfig(),
        PROTOCOL,
        "test",
        log=lambda _msg: None,
    )
    return out, load_evidence(tmp_path / folder / "attention_lstm.npz")


def _close(a, b) -> None:
    """Equal to float rounding: a batch of new windows and the month's batch are summed in another order."""
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _same_except_nulls(a: PeriodEvidence, b: PeriodEvidence) -> None:
    assert a.tensors.keys() == b.tensors.keys() and a.controls.keys() == b.controls.keys()
    for k in a.tensors:
        _close(a.tensors[k], b.tensors[k])
    for c in a.controls:
        assert a.controls[c].keys() == b.controls[c].keys()
        for k in a.controls[c]:
            _close(a.controls[c][k], b.controls[c][k])
    np.testing.assert_array_equal(a.end_ts, b.end_ts)
    _close(a.trailing_vol, b.trailing_vol)
    assert a.ablation is not None and b.ablation is not None
    for x, y in zip(a.ablation, b.ablation):
        _close(x, y)
    assert a.deletion is not None and b.deletion is not None and a.deletion.k == b.deletion.k
    for k in ("top", "recent", "size"):
        _close(getattr(a.deletion, k), getattr(b.deletion, k))
    assert a.attribution is not None and b.attribution is not None
    _close(a.attribution[0], b.attribution[0])
    _close(a.attribution[1], b.attribution[1])
    ra, rb = a.reading, b.reading
    assert (ra.windows, ra.first_hour, ra.last_hour, ra.peak_hour) == (
        rb.windows,
        rb.first_hour,
        rb.last_hour,
        rb.peak_hour,
    )
    assert ra.peak_lift == pytest.approx(rb.peak_lift, rel=1e-5)
    assert ra.peak_lift_ci == pytest.approx(rb.peak_lift_ci, rel=1e-5)
    assert (ra.concentrated, ra.relied_upon) == (rb.concentrated, rb.relied_upon)


def test_appended_days_equal_a_full_recomputation_except_the_dated_nulls(tmp_path):
    ckpt, data = _month(DECEMBER.hours)
    first, _ = _run(tmp_path, "daily", ckpt, data, 120)  # day 5: computed in full
    assert first.appended == 0 and first.nulls_redrawn
    day6, _ = _run(tmp_path, "daily", ckpt, data, 144)  # integrated gradients not yet complete: redone
    day7, daily = _run(tmp_path, "daily", ckpt, data, 168)  # past IG_WINDOWS: kept
    assert (day6.appended, day7.appended) == (24, 24) and not day7.nulls_redrawn
    assert day7.controls_trained == 0
    full_out, full = _run(tmp_path, "full", ckpt, data, 168)
    assert full_out.appended == 0 and full_out.nulls_redrawn
    _same_except_nulls(daily, full)
    # the nulls: drawn on day 5's 120 windows, dated; the full run's cover all 168
    assert daily.deletion is not None and full.deletion is not None
    assert daily.deletion.null_windows == 120 and full.deletion.null_windows == 168
    # tiny_data's test hours start at hour 1,000 of 1970: the 120th window ends at hour 1,119
    assert daily.deletion.nulls_through == "1970-02-16 15:00 UTC" and daily.deletion.nulls_computed_on
    an = pool([daily], resamples=PROTOCOL.resamples)
    assert an.deletion is not None and an.deletion.windows == 168
    assert an.deletion.nulls_computed_on == daily.deletion.nulls_computed_on
    text = " ".join(_deletion_sentences("attention_lstm", an))
    assert f"the current month's p-values were last computed on {daily.deletion.nulls_computed_on}" in text
    whole = pool([full], resamples=PROTOCOL.resamples)
    assert whole.deletion is not None and whole.deletion.nulls_computed_on == ""
    assert an.deletion.top_k_change == pytest.approx(whole.deletion.top_k_change, rel=1e-5)
    assert an.deletion.size_ratio_ci == pytest.approx(whole.deletion.size_ratio_ci, rel=1e-5)
    assert "last computed on" not in " ".join(_deletion_sentences("attention_lstm", whole))


def test_a_changed_earlier_hour_recomputes_the_month_in_full(tmp_path):
    ckpt, data = _month(DECEMBER.hours)
    _run(tmp_path, "daily", ckpt, data, 120)
    x = data.test.x.copy()
    x[57, -1, 0] += 0.5  # a corrected candle inside the hours already analysed
    corrected = replace(data, test=replace(data.test, x=x))
    out, ev = _run(tmp_path, "daily", ckpt, corrected, 144)
    assert out.appended == 0 and out.nulls_redrawn
    _, full = _run(tmp_path, "full", ckpt, corrected, 144)
    _same_except_nulls(ev, full)
    assert ev.deletion is not None and full.deletion is not None
    for k in NULLS:  # recomputed: the nulls too are the full run's
        np.testing.assert_allclose(getattr(ev.deletion, k), getattr(full.deletion, k), rtol=1e-5)


def test_the_nulls_are_redrawn_a_week_on_and_when_the_month_closes(tmp_path):
    ckpt, data = _month(DECEMBER.hours)
    _run(tmp_path, "daily", ckpt, data, 120)
    week, daily = _run(tmp_path, "daily", ckpt, data, 120 + 7 * 24)  # a week of hours later: redrawn
    assert week.appended == 7 * 24 and week.nulls_redrawn
    _, full = _run(tmp_path, "full", ckpt, data, 120 + 7 * 24)
    assert daily.deletion is not None and full.deletion is not None and daily.deletion.null_windows == 288
    for k in NULLS:
        np.testing.assert_allclose(getattr(daily.deletion, k), getattr(full.deletion, k), rtol=1e-5)
    # the month's last day: appended, and the nulls redrawn over every hour of the month though a week has not passed
    _run(tmp_path, "daily", ckpt, data, DECEMBER.hours - 24)
    last, closed = _run(tmp_path, "daily", ckpt, data, DECEMBER.hours)
    assert last.appended == 24 and last.nulls_redrawn
    _, full = _run(tmp_path, "full", ckpt, data, DECEMBER.hours)
    _same_except_nulls(closed, full)
    assert closed.deletion is not None and full.deletion is not None
    for k in NULLS:
        np.testing.assert_allclose(getattr(closed.deletion, k), getattr(full.deletion, k), rtol=1e-5)
    a, b = pool([closed], resamples=PROTOCOL.resamples).deletion, pool([full], resamples=PROTOCOL.resamples).deletion
    assert a is not None and b is not None and a.nulls_computed_on == b.nulls_computed_on == ""  # not dated: current
    assert (a.matched_p_value, a.random_p_value) == (b.matched_p_value, b.random_p_value)
    assert a.matched_change_mean == pytest.approx(b.matched_change_mean, rel=1e-5)


def test_the_null_schedule():
    d = DeletionEvidence(5, *(np.zeros(3),) * 6, null_windows=3, nulls_through="2025-12-10 23:00 UTC")
    assert not nulls_due(d, np.datetime64("2025-12-17T22", "h"), closed=False)  # six days and 23 hours
    assert nulls_due(d, np.datetime64("2025-12-17T23", "h"), closed=False)  # a week
    assert nulls_due(d, np.datetime64("2025-12-11T00", "h"), closed=True)  # the month closed
    assert nulls_due(replace(d, nulls_through=""), np.datetime64("2025-12-11T00", "h"), closed=False)  # unknown
    assert period_run.NULLS_EVERY_DAYS == 7
