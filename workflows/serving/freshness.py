"""The served forecast's age: when it was made, for which hour, and whether it is still current.

`latest_forecast` stores one row per symbol in the `forecasts` table: the hour forecast
(`ts`), the last input hour it was made from (`origin_ts`), when it was made (`made_at`),
and, when the newest hours cannot be forecast (a gap in the candles: the model needs
`window` consecutive feature hours, and a segment's features begin `WARMUP_HOURS` after
its first candle), the first hour a forecast can be made for again (`resumes_at`).

A forecast is *stale* when its hour began more than `max_age_hours` ago (default
`DEFAULT_MAX_AGE_HOURS`): the hour it forecasts is over and no newer forecast replaced it,
because candles stopped landing, a gap left too few consecutive hours, or the pipeline
did not run. Readers (`served_forecast`) compute the age at the time they read, so a row
read a year later says so; the asset flags it in its metadata and its `forecast_age` check.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb
import polars as pl

from workflows.data.features import WARMUP_HOURS
from workflows.data.tables import ensure
from workflows.data.warehouse import replace_table_slice, table_exists
from workflows.serving.served_record import ServedForecast

DEFAULT_MAX_AGE_HOURS = 3.0  # two missed hourly runs are tolerated; a third makes the forecast stale
HOUR = timedelta(hours=1)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class ForecastAge:
    """How old one served forecast is at `now`."""

    forecast_hour: datetime  # the hour forecast (UTC)
    origin: datetime | None  # its last input hour (None: a row stored before origins were)
    made_at: datetime | None  # when it was made (None: likewise)
    now: datetime
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS
    resumes_at: datetime | None = None  # the first hour forecastable again after a gap (None: no gap)

    @property
    def age_hours(self) -> float:
        """Hours since the forecast hour began (negative: it has not begun yet)."""
        return (_utc(self.now) - _utc(self.forecast_hour)).total_seconds() / 3600

    @property
    def stale(self) -> bool:
        return self.resumes_at is not None or self.age_hours > self.max_age_hours

    def describe(self) -> str:
        """One sentence for the UI and the terminal."""
        made = f", made {_utc(self.made_at):%Y-%m-%d %H:%M} UTC" if self.made_at else ""
        head = f"forecast for {_utc(self.forecast_hour):%Y-%m-%d %H:%M} UTC{made}, {self.age_hours:.1f} h old"
        if not self.stale:
            return f"{head}: current"
        why = (
            f"STALE (older than the {self.max_age_hours:g} h allowed)"
            if self.age_hours > self.max_age_hours
            else ("STALE (the newest hours cannot be forecast)")
        )
        if self.resumes_at is not None:
            last = _utc(self.resumes_at) - HOUR
            return (
                f"{head}: {why}; a gap in the candles left too few consecutive hours: forecasting resumes with the "
                f"hour {_utc(self.resumes_at):%Y-%m-%d %H:%M} UTC, once the candles through {last:%Y-%m-%d %H:%M} "
                "UTC have landed"
            )
        return (
            f"{head}: {why}; no newer candles were forecast: land the candles after "
            f"{_utc(self.origin or self.forecast_hour - HOUR):%Y-%m-%d %H:%M} UTC (or check the schedules and "
            "sensors run) and forecasting resumes with the next hour landed"
        )

    def metadata(self) -> dict:
        """What the UI shows beside the forecast."""
        return {
            "forecast_hour": _utc(self.forecast_hour).isoformat(),
            "made_at": _utc(self.made_at).isoformat() if self.made_at else "unknown",
            "age_hours": round(self.age_hours, 2),
            "max_age_hours": self.max_age_hours,
            "stale": self.stale,
            "resumes_at": _utc(self.resumes_at).isoformat() if self.resumes_at else "n/a",
            "freshness": self.describe(),
        }


def resumes_at(candles: pl.DataFrame, features: pl.DataFrame, window: int) -> datetime | None:
    """None when the newest `window` feature hours are consecutive in one segment and reach the newest candle (a
    forecast can be made now); else the first hour a forecast can be made for again: once the newest run of
    consecutive candles holds `WARMUP_HOURS` (its features' warm-up) plus `window` hours."""
    if candles.is_empty():
        return None
    ts = candles.sort("ts")["ts"]
    gaps = (ts.diff().dt.total_seconds() != 3600).fill_null(True).to_list()
    start = _utc(ts[max(i for i, gap in enumerate(gaps) if gap)])  # the newest run's first candle
    resume = start + (WARMUP_HOURS + window) * HOUR
    newest = _utc(ts[-1])
    if features.height >= window:
        tail = features.sort("ts").tail(window)
        hours = tail["ts"].to_list()
        if (
            tail["segment"].n_unique() == 1
            and _utc(hours[-1]) - _utc(hours[0]) == (window - 1) * HOUR
            and _utc(hours[-1]) == newest
        ):
            return None
    return resume if resume > newest + HOUR else newest + HOUR


def store_forecast(con: duckdb.DuckDBPyConnection, symbol: str, forecast: ServedForecast, made_at: datetime) -> None:
    """Serve `forecast` (`promotion.forecast_next_hour`'s): replace the symbol's row, with its hour, its last input
    hour and when it was made."""
    probs = forecast.direction_probabilities or {}
    lo, hi = forecast.interval_80_pct or (None, None)
    row = pl.DataFrame(
        [
            {
                "symbol": symbol,
                "ts": _utc(forecast.forecast_hour),
                "model": forecast.model,
                "return_pct": forecast.return_pct,
                "lo80_pct": lo,
                "hi80_pct": hi,
                "p_down": probs.get("DOWN"),
                "p_stable": probs.get("STABLE"),
                "p_up": probs.get("UP"),
                "origin_ts": _utc(forecast.as_of_candle),
                "made_at": _utc(made_at),
                "resumes_at": None,
            }
        ],
        schema_overrides={"resumes_at": pl.Datetime("us", "UTC")},
    )
    replace_table_slice(con, "forecasts", symbol, row)


def mark_unservable(con: duckdb.DuckDBPyConnection, symbol: str, resume: datetime) -> None:
    """The newest hours cannot be forecast (a gap): the served row stays what it was, flagged with the first hour
    a forecast can be made for again, so no reader takes it for current."""
    ensure(con, "forecasts")
    con.execute("UPDATE forecasts SET resumes_at = ? WHERE symbol = ?", [_utc(resume).replace(tzinfo=None), symbol])


def served_forecast(
    con: duckdb.DuckDBPyConnection,
    symbol: str,
    now: datetime | None = None,
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
) -> tuple[dict, ForecastAge] | None:
    """The stored forecast of `symbol` and its age at `now` (default: the clock); None when nothing is served."""
    if not table_exists(con, "forecasts"):
        return None
    ensure(con, "forecasts")
    rows = con.execute("SELECT * FROM forecasts WHERE symbol = ? ORDER BY ts DESC LIMIT 1", [symbol]).fetchall()
    if not rows:
        return None
    columns = [d[0] for d in con.description or []]
    row = dict(zip(columns, rows[0]))
    age = ForecastAge(
        row["ts"],
        row["origin_ts"],
        row["made_at"],
        now or datetime.now(timezone.utc),
        max_age_hours,
        row["resumes_at"],
    )
    return row, age
