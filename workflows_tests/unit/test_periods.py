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
