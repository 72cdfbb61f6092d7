"""Forecast periods: calendar months, training windows strictly before them, the training slice's version."""

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.periods import (
    ForecastPeriod,
    PeriodConfig,
    history_shortfall,
    period_windows,
    trainable_periods,
    training_bounds,
    training_slice_version,
)
from workflows.ml.windows import WindowSpec

UTC = timezone.utc
CFG = PeriodConfig(train_days=40, min_train_days=30, val_days=7)


@pytest.fixture(scope="module")
def feats() -> pl.DataFrame:
    return compute_features(generate_candles(SyntheticSpec(days=110, seed=3)))  # 2025-09-13 .. 2025-12-31


def test_period_is_a_calendar_month():
    p = ForecastPeriod.of(datetime(2024, 2, 29, 13, tzinfo=UTC))
    assert p.key == "2024-02-01" and p.hours == 29 * 24 and str(p) == "2024-02"
    assert p.next().key == "2024-03-01" and p.previous().key == "2024-01-01"
    assert ForecastPeriod.from_key("2024-12-01").end == datetime(2025, 1, 1, tzinfo=UTC)
    assert ForecastPeriod.from_key("2024-12-01") == ForecastPeriod.of(datetime(2024, 12, 31, 23))  # naive = UTC
    with pytest.raises(ValueError, match="first of a month"):
        ForecastPeriod(datetime(2024, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="YYYY-MM-01"):
        ForecastPeriod.from_key("January")


def test_training_ends_validation_and_two_embargoes_before_the_period(feats):
    spec = WindowSpec()
    period = ForecastPeriod.from_key("2025-12-01")
    b = training_bounds(period, spec, CFG)
    assert b.test_lo - b.val_hi == spec.embargo and b.val_lo - b.train_hi == spec.embargo
    assert b.val_hi - b.val_lo == 7 * 24 and b.train_hi - b.train_lo == 40 * 24
    data = period_windows(feats, spec, period, CFG)
    hour = np.timedelta64(1, "h")
    start = np.datetime64(period.start.replace(tzinfo=None), "us")
    # the last training and validation targets (24 hours after the window end) lie before the period
    assert data.train.end_ts.max() + 24 * hour < data.val.end_ts.min()
    assert data.val.end_ts.max() + spec.vol_horizon * hour < start
    assert data.train.end_ts.max() == start - (2 * spec.embargo + 7 * 24 + 1) * hour
    assert data.test.end_ts.min() == start and len(data.test) == 31 * 24 - 24  # the last day lacks its targets


def test_a_period_that_has_just_begun_has_an_empty_test_split(feats):
    spec = WindowSpec()
    cut = feats.filter(pl.col("ts") < datetime(2025, 12, 1, 5, tzinfo=UTC))
    data = period_windows(cut, spec, ForecastPeriod.from_key("2025-12-01"), CFG)
    assert len(data.test) == 0 and len(data.train) > 0 and len(data.val) > 0


def test_trainable_periods_need_the_minimum_training_history(feats):
    spec = WindowSpec()
    assert [p.key for p in trainable_periods(feats, spec, CFG)] == ["2025-11-01", "2025-12-01"]
    assert [p.key for p in trainable_periods(feats, spec, CFG, max_periods=1)] == ["2025-12-01"]
    longer = PeriodConfig(train_days=90, min_train_days=60, val_days=7)
    assert [p.key for p in trainable_periods(feats, spec, longer)] == ["2025-12-01"]


def test_training_slice_version_ignores_new_hours_and_sees_corrections(feats):
    spec, period = WindowSpec(), ForecastPeriod.from_key("2025-12-01")
    full = training_slice_version(feats, spec, period, CFG)
    day_in = feats.filter(pl.col("ts") < datetime(2025, 12, 2, tzinfo=UTC))
    assert training_slice_version(day_in, spec, period, CFG) == full  # a new day inside the period
    before = period.start - timedelta(days=20)
    corrected = feats.with_columns(
        pl.when(pl.col("ts") == before).then(pl.col("log_return") + 0.01).otherwise(pl.col("log_return"))
    )
    assert training_slice_version(corrected, spec, period, CFG) != full
    assert training_slice_version(feats, spec, period.previous(), CFG) != full


def test_a_history_too_short_for_a_period_says_how_much_more_it_needs(feats):
    """The message's two remedies are checked by applying them: the days it asks for make a period, and so does
    the `min_train_days` it names, while one day less history (or one day more training) does not."""
    import re

    spec = WindowSpec()
    assert history_shortfall(feats, spec, CFG) is None and trainable_periods(feats, spec, CFG)
    feats = compute_features(generate_candles(SyntheticSpec(days=200, seed=3)))  # from 2025-06-15
    short = feats.filter(pl.col("ts") >= datetime(2025, 11, 1, tzinfo=UTC))  # 61 days: no 60-day window fits
    cfg = PeriodConfig()
    why = history_shortfall(short, spec, cfg)
    assert why is not None and not trainable_periods(short, spec, cfg)
    assert "hold no forecast period" in why and "2025-12" in why
    more = int(re.search(r"land (\d+) more days", why).group(1))
    most = int(re.search(r"--min-train-days\) to (\d+) or less", why).group(1))
    assert 0 < most < cfg.min_train_days
    longer = feats.filter(pl.col("ts") >= datetime(2025, 11, 1, tzinfo=UTC) - timedelta(days=more))
    assert trainable_periods(longer, spec, cfg) and history_shortfall(longer, spec, cfg) is None
    one_day_less = feats.filter(pl.col("ts") >= datetime(2025, 11, 1, tzinfo=UTC) - timedelta(days=more - 1))
    assert not trainable_periods(one_day_less, spec, cfg)
    assert trainable_periods(short, spec, PeriodConfig(min_train_days=most))
    assert not trainable_periods(short, spec, PeriodConfig(min_train_days=most + 1))
    # nothing at all before the newest period's validation: no setting helps, only more history
    tail = feats.filter(pl.col("ts") >= datetime(2025, 12, 1, tzinfo=UTC))
    only_more = history_shortfall(tail, spec, cfg)
    assert only_more is not None and "land" in only_more and "--min-train-days" not in only_more
    assert history_shortfall(feats.head(0), spec, cfg) == "no feature rows: land candles first"
