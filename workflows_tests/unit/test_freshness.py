"""The served forecast's age: made when, for which hour, stale past a configured age, and when it can resume."""

from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl

from workflows.data.features import WARMUP_HOURS, compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.serving import freshness as fr
from workflows.serving.served_record import ServedForecast

UTC = timezone.utc
END = datetime(2026, 1, 1, tzinfo=UTC)  # the last candle opens at 2025-12-31 23:00
CANDLES = generate_candles(SyntheticSpec(days=20, seed=1, end=END))


def _forecast(last: datetime) -> ServedForecast:
    return ServedForecast(
        as_of_candle=last,
        forecast_hour=last + timedelta(hours=1),
        model="multitask.pt",
        return_pct=0.01,
        interval_80_pct=(-0.5, 0.5),
        direction_probabilities={"DOWN": 0.3, "STABLE": 0.4, "UP": 0.3},
    )


def test_the_newest_hours_forecastable_or_the_hour_forecasting_resumes_after_a_gap():
    assert fr.resumes_at(CANDLES, compute_features(CANDLES), 48) is None  # consecutive through the newest candle
    # three days without candles, then 40 hours: the new segment's features begin WARMUP_HOURS after its first
    # candle, and a 48-hour window needs 48 of them
    restart = END + timedelta(days=3)
    after = generate_candles(SyntheticSpec(days=5, seed=2, end=restart + timedelta(days=5)))
    after = after.filter(pl.col("ts") < restart + timedelta(hours=40))
    gapped = pl.concat([CANDLES, after])
    resume = fr.resumes_at(gapped, compute_features(gapped), 48)
    assert resume == restart + timedelta(hours=WARMUP_HOURS + 48)
    # features that lag the candles (not refreshed yet): the hour after the newest candle
    lagging = fr.resumes_at(CANDLES, compute_features(CANDLES).head(-5), 48)
    assert lagging == END


def test_a_served_forecast_carries_its_hour_and_making_and_is_stale_past_the_configured_age():
    con = duckdb.connect()
    last = END - timedelta(hours=1)
    fr.store_forecast(con, "BTC", _forecast(last), made_at=END + timedelta(minutes=5))
    served = fr.served_forecast(con, "BTC", now=END + timedelta(minutes=30))
    assert served is not None
    row, age = served
    assert row["ts"] == END.replace(tzinfo=None) and row["origin_ts"] == last.replace(tzinfo=None)
    assert row["made_at"] == (END + timedelta(minutes=5)).replace(tzinfo=None)
    assert not age.stale and age.describe().endswith("current")
    # the clock a year on: the same row is flagged, with what to do
    _, later = fr.served_forecast(con, "BTC", now=END + timedelta(days=365)) or (None, None)
    assert later is not None and later.stale and later.age_hours > 8000
    assert "STALE (older than the 3 h allowed)" in later.describe() and "land the candles after 2025-12-31 23:00" in (
        later.describe()
    )
    # the age is a setting: 3 hours on is current under a 6-hour limit, stale under the default
    at = END + timedelta(hours=4)
    assert fr.served_forecast(con, "BTC", now=at)[1].stale  # type: ignore[index]
    assert not fr.served_forecast(con, "BTC", now=at, max_age_hours=6)[1].stale  # type: ignore[index]
    # a gap: the row stays, flagged with the hour forecasting resumes, stale even before the age runs out
    fr.mark_unservable(con, "BTC", END + timedelta(hours=83))
    _, gap = fr.served_forecast(con, "BTC", now=END + timedelta(minutes=30)) or (None, None)
    assert gap is not None and gap.stale
    assert "forecasting resumes with the hour 2026-01-04 11:00 UTC" in gap.describe()
    assert gap.metadata()["stale"] is True and gap.metadata()["resumes_at"] == "2026-01-04T11:00:00+00:00"


def test_a_forecasts_table_from_before_the_age_columns_still_reads_and_is_stale():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE forecasts (symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, model VARCHAR, return_pct DOUBLE, "
        "lo80_pct DOUBLE, hi80_pct DOUBLE, p_down DOUBLE, p_stable DOUBLE, p_up DOUBLE)"
    )
    con.execute("INSERT INTO forecasts VALUES ('BTC', '2026-01-01 00:00', 'm.pt', 0.1, NULL, NULL, NULL, NULL, NULL)")
    _, age = fr.served_forecast(con, "BTC", now=END + timedelta(days=365)) or (None, None)
    assert age is not None and age.stale and age.made_at is None and "made" not in age.describe()
    fr.store_forecast(con, "BTC", _forecast(END), made_at=END + timedelta(hours=1))  # the old table gains them
    assert con.execute("SELECT count(*), max(made_at) FROM forecasts").fetchone() == (
        1,
        (END + timedelta(hours=1)).replace(tzinfo=None),
    )
