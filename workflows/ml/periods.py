"""Forecast periods: the unit in which models are trained and their forecasts stored.

A forecast period is one calendar month (UTC). Its models train once, on hours
strictly before it, and forecast every hour of it; the evaluation's evidence is
these forecasts (the forecast log) pooled over the monthly periods.

Why a month, not a week: a month holds about 720 test hours, enough for a
per-period skill interval and an attention bootstrap of 15 blocks of 48 hours (a
week's 168 hours give three and a half), and it costs 12 trainings of every model
and control a year instead of 52 (on 2 CPU cores each training of the six models
and two controls takes minutes). The price is freshness: the newest period's model
has not seen the hours of the current month (at most about 31 days), against at
most a week for weekly periods.

The training window of period P (hours are window ends, i.e. forecast origins):

    [train_lo, train_hi)   training windows: at most `train_days` (a rolling year)
    embargo                window + volatility horizon hours (72 by default)
    [val_lo, val_hi)       `val_days` of validation windows (early stopping)
    embargo
    [P.start, P.end)       the period's test origins: every forecast of the period

so no input or target hour of training or validation reaches into the period.
A period's model warm-starts from the previous period's model of the same kind
(at most `warm_epochs` epochs); the first period of a chain trains from scratch.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from workflows.ml.windows import WindowData, WindowSpec, build_fold

HOURS_PER_DAY = 24
# The first period the partitions definition knows (before any exchange export begins).
FIRST_PERIOD = "2017-01-01"
PERIOD_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True, order=True)
class ForecastPeriod:
    """One calendar month, UTC: [start, end)."""

    start: datetime

    def __post_init__(self):
        s = self.start
        if s.tzinfo is None or s.utcoffset() != timedelta(0) or (s.day, s.hour, s.minute, s.second) != (1, 0, 0, 0):
            raise ValueError(f"a forecast period starts at 00:00 UTC on the first of a month, got {s!r}")

    @classmethod
    def of(cls, moment: datetime) -> "ForecastPeriod":
        """The period holding `moment` (naive datetimes are UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        m = moment.astimezone(timezone.utc)
        return cls(datetime(m.year, m.month, 1, tzinfo=timezone.utc))

    @classmethod
    def from_key(cls, key: str) -> "ForecastPeriod":
        """From a partition key such as `2025-11-01`."""
        try:
            start = datetime.strptime(key, PERIOD_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise ValueError(f"period key {key!r}: expected the first day of a month as YYYY-MM-01") from exc
        return cls(start)

    @property
    def key(self) -> str:
        return self.start.strftime(PERIOD_FORMAT)

    @property
    def end(self) -> datetime:
        y, m = (self.start.year + 1, 1) if self.start.month == 12 else (self.start.year, self.start.month + 1)
        return datetime(y, m, 1, tzinfo=timezone.utc)

    @property
    def start_hour(self) -> int:
        """Unix hour (seconds // 3600) of the first hour."""
        return int(self.start.timestamp()) // 3600

    @property
    def end_hour(self) -> int:
        return int(self.end.timestamp()) // 3600

    @property
    def hours(self) -> int:
        return self.end_hour - self.start_hour

    def previous(self) -> "ForecastPeriod":
        return ForecastPeriod.of(self.start - timedelta(hours=1))

    def next(self) -> "ForecastPeriod":
        return ForecastPeriod(self.end)

    def __str__(self) -> str:
        return self.start.strftime("%Y-%m")


@dataclass(frozen=True)
class PeriodConfig:
    train_days: int = 365  # the most history a period's models train on (rolling)
    min_train_days: int = 60  # a period whose training window holds fewer days is not trained
    val_days: int = 14
    warm_epochs: int = 5  # the most epochs of a warm-started period
    warm_patience: int = 2

    def __post_init__(self):
        if not 0 < self.min_train_days <= self.train_days:
            raise ValueError(f"need 0 < min_train_days <= train_days, got {self.min_train_days}, {self.train_days}")
        if self.val_days < 1:
            raise ValueError(f"val_days must be at least 1, got {self.val_days}")


@dataclass(frozen=True)
class TrainingBounds:
    """Unix hours (window ends) of each split of a period: [lo, hi)."""

    train_lo: int
    train_hi: int
    val_lo: int
    val_hi: int
    test_lo: int
    test_hi: int

    def iso(self, hour: int) -> str:
        return datetime.fromtimestamp(hour * 3600, tz=timezone.utc).isoformat()


def training_bounds(period: ForecastPeriod, spec: WindowSpec, cfg: PeriodConfig) -> TrainingBounds:
    val_hi = period.start_hour - spec.embargo
    val_lo = val_hi - cfg.val_days * HOURS_PER_DAY
    train_hi = val_lo - spec.embargo
    return TrainingBounds(
        train_hi - cfg.train_days * HOURS_PER_DAY, train_hi, val_lo, val_hi, period.start_hour, period.end_hour
    )


def _hours(features: pl.DataFrame) -> np.ndarray:
    return (features["ts"].dt.epoch("s").to_numpy() // 3600).astype(np.int64)


def period_windows(
    features: pl.DataFrame, spec: WindowSpec, period: ForecastPeriod, cfg: PeriodConfig, data_version: str = ""
) -> WindowData:
    """Training, validation and test windows of `period` (see the module docstring). The test split holds the
    period's origins whose input window and targets are complete so far; it may be empty (a period that has
    just begun), training and validation never are."""
    b = training_bounds(period, spec, cfg)
    return build_fold(
        features,
        spec,
        b.test_lo,
        b.test_hi - b.test_lo,
        cfg.val_days * HOURS_PER_DAY,
        cfg.train_days * HOURS_PER_DAY,
        data_version,
        min_test_windows=0,
    )


def training_slice_version(features: pl.DataFrame, spec: WindowSpec, period: ForecastPeriod, cfg: PeriodConfig) -> str:
    """Content hash of every feature row a period's training and validation windows read (inputs and targets):
    rows from the first training window's first input hour up to the period's start. New hours inside or after
    the period leave it unchanged; a corrected candle before the period changes it."""
    b = training_bounds(period, spec, cfg)
    hours = _hours(features)
    rows = features.filter(pl.Series((hours >= b.train_lo - (spec.window - 1)) & (hours < period.start_hour)))
    columns = ["ts", "segment", "log_return", *[c for c in spec.features if c in rows.columns]]
    digest = hashlib.sha256()
    digest.update(f"{period.key}|{spec}|{cfg}".encode())
    for name in dict.fromkeys(columns):
        col = rows[name]
        values = col.dt.epoch("s").to_numpy() if col.dtype == pl.Datetime else col.to_numpy()
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:16]


def trainable_periods(
    features: pl.DataFrame, spec: WindowSpec, cfg: PeriodConfig, max_periods: int | None = None
) -> list[ForecastPeriod]:
    """The periods the history allows, oldest first: from the first whose training window starts at least
    `min_train_days` after the first feature hour (so it holds that much history) through the period of the
    newest feature hour (the current period, possibly just begun). `max_periods`: only the newest ones."""
    if features.is_empty():
        return []
    hours = _hours(features)
    first, last = int(hours.min()), int(hours.max())
    newest = ForecastPeriod.of(datetime.fromtimestamp(last * 3600, tz=timezone.utc))
    out: list[ForecastPeriod] = []
    period = newest
    while True:
        b = training_bounds(period, spec, cfg)
        if b.train_hi - max(b.train_lo, first + spec.window - 1) < cfg.min_train_days * HOURS_PER_DAY:
            break
        out.append(period)
        period = period.previous()
    out.reverse()
    return out[-max_periods:] if max_periods else out


def history_shortfall(features: pl.DataFrame, spec: WindowSpec, cfg: PeriodConfig) -> str | None:
    """None when the history holds at least one forecast period (`trainable_periods` is not empty); else, in
    words, why not, how many more days of earlier history the newest period needs, and the largest
    `min_train_days` this history allows (when any)."""
    if features.is_empty():
        return "no feature rows: land candles first"
    hours = _hours(features)
    first, last = int(hours.min()), int(hours.max())
    newest = ForecastPeriod.of(datetime.fromtimestamp(last * 3600, tz=timezone.utc))
    b = training_bounds(newest, spec, cfg)
    have = b.train_hi - (first + spec.window - 1)  # training window ends the history holds for the newest period
    need = cfg.min_train_days * HOURS_PER_DAY
    if have >= need:
        return None
    before = newest.start_hour - b.train_hi  # validation and the two embargoes
    days = (last - first + 1) / HOURS_PER_DAY
    text = (
        f"{days:.0f} days of history ({_iso_day(first)} to {_iso_day(last)}) hold no forecast period: the newest, "
        f"{newest}, needs {cfg.min_train_days} days of training windows (min_train_days) ending "
        f"{before / HOURS_PER_DAY:g} days before {newest.start:%Y-%m-%d} ({cfg.val_days} validation days and two "
        f"{spec.embargo}-hour embargoes), plus the first window's {spec.window} input hours; "
        f"land {-(-(need - have) // HOURS_PER_DAY)} more days of earlier history"
    )
    most = have // HOURS_PER_DAY
    if most >= 1:
        text += f", or set min_train_days (--min-train-days) to {most} or less, the most this history allows"
    return text


def _iso_day(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, tz=timezone.utc).strftime("%Y-%m-%d")
