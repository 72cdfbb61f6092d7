"""One code path for intervals: the interval served for an hour is the report's interval for that hour, and
the report's interval evaluation scores exactly the intervals that are served (evaluation/intervals.py)."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from workflows.evaluation.evidence import OWN_SD, interval_calibration
from workflows.evaluation.intervals import WARM_UP, IntervalHistory, log_intervals, sd_of
from workflows.serving.promotion import served_quantiles
from workflows.stats.calibration import coverage_by_sd, interval_score

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _log(n: int, seed: int = 0) -> IntervalHistory:
    """A forecast log of one model kind: volatility that rises halfway, a forecast with a little skill and a
    predictive variance that tracks the volatility only roughly (so the conformal quantile has work to do)."""
    rng = np.random.default_rng(seed)
    true_sd = np.where(np.arange(n) < n // 2, 0.004, 0.010) * np.exp(0.3 * rng.standard_normal(n))
    signal = rng.normal(0, 0.001, n)
    y = signal + true_sd * rng.standard_normal(n)
    variance = (0.7 * true_sd) ** 2 * np.exp(0.4 * rng.standard_normal(n))
    origin = np.datetime64(T0.replace(tzinfo=None), "us") + np.arange(n) * np.timedelta64(1, "h")
    return IntervalHistory("multitask", origin, y, 0.5 * signal, variance)


def _hour(log: IntervalHistory, t: int) -> datetime:
    """The hour row t forecasts (its origin + 1 h), as `latest_forecast` names the hour it serves."""
    return T0 + timedelta(hours=t + 1)


def _served(log: IntervalHistory, t: int, level: float) -> tuple[float, float] | None:
    """What `latest_forecast` serves for row t's hour, with the log's forecast and sd of that hour: the conformal
    state over the log's rows before the hour (`served_quantiles`), then `next_interval`."""
    paths, _, version = served_quantiles(log, _hour(log, t))
    if not paths:
        assert version is None
        return None
    return paths[level].next_interval(log.forecast[t], float(sd_of(log.variance[t : t + 1])[0]))


def test_the_interval_served_for_an_hour_is_the_reports_interval_for_that_hour():
    log = _log(1500)
    report = log_intervals(log.y, log.forecast, log.variance)
    assert report is not None
    for level in (0.80, 0.95):
        for t in (WARM_UP, WARM_UP + 1, 640, 750, 751, 1200, 1499):  # the warm-up's end, the volatility rise, last
            lo, hi = _served(log, t, level) or (np.nan, np.nan)
            assert lo == pytest.approx(report[level].lower[t], abs=1e-12, rel=0)
            assert hi == pytest.approx(report[level].upper[t], abs=1e-12, rel=0)
    # during the warm-up neither the report nor the server has an interval
    assert _served(log, WARM_UP - 1, 0.80) is None and np.isnan(report[0.80].lower[WARM_UP - 1])
    _, note, _ = served_quantiles(log, _hour(log, WARM_UP - 1))
    assert note.startswith(f"none served: the forecast log holds {WARM_UP - 1} hours")
    assert f"warm-up of {WARM_UP}" in note


def test_an_hours_interval_does_not_change_as_the_log_grows():
    """A fixed warm-up: the interval of an hour rests on earlier hours only, so the report written later (a longer
    log) shows the interval that was served."""
    log = _log(1500, seed=1)
    short = log_intervals(log.y[:700], log.forecast[:700], log.variance[:700])
    full = log_intervals(log.y, log.forecast, log.variance)
    assert short is not None and full is not None
    for level in (0.80, 0.95):
        np.testing.assert_allclose(short[level].lower, full[level].lower[:700], rtol=0, atol=1e-15)
        assert short[level].q_next == full[level].quantile[700]


def test_the_reports_interval_evaluation_scores_the_served_intervals():
    """The report's coverage, interval score and coverage by sd decile after calibration are those of the
    intervals served hour by hour: a report that scaled, warmed up or pooled differently would differ."""
    log = _log(430, seed=2)
    cal = interval_calibration(log.forecast, log.y, log.variance)
    assert set(cal) == {80, 95}
    hours = range(WARM_UP, len(log.y))
    sd = sd_of(log.variance)[WARM_UP:]
    y = log.y[WARM_UP:]
    for pct, c in cal.items():
        served = np.array([_served(log, t, pct / 100) for t in hours])
        lo, hi = served[:, 0], served[:, 1]
        assert c.scale == OWN_SD and c.calibration_hours == WARM_UP and c.after.n == len(hours)
        assert c.after.observed == pytest.approx(np.mean((y >= lo) & (y <= hi)), abs=1e-12)
        assert c.interval_score_after == pytest.approx(interval_score(y, lo, hi, 1 - pct / 100), abs=1e-12)
        assert c.by_sd_after == coverage_by_sd(y, lo, hi, sd, pct / 100)
    # on a long log too: the warm-up stays the served one (not a share of the hours) and the report's figures are
    # those of the served procedure's intervals (the hour-by-hour equality above, on 3,000 hours)
    long = _log(3000, seed=3)
    paths = log_intervals(long.y, long.forecast, long.variance)
    assert paths is not None
    for pct, c in interval_calibration(long.forecast, long.y, long.variance).items():
        path, t = paths[pct / 100], slice(WARM_UP, None)
        assert c.calibration_hours == WARM_UP and c.after.n == 3000 - WARM_UP
        inside = (long.y[t] >= path.lower[t]) & (long.y[t] <= path.upper[t])
        assert c.after.observed == pytest.approx(inside.mean(), abs=1e-12)
        score = interval_score(long.y[t], path.lower[t], path.upper[t], 1 - pct / 100)
        assert c.interval_score_after == pytest.approx(score, abs=1e-12)
