"""Serving one hour: the production model's next-hour forecast stored, its age, and the served record.

`serve_next_hour` is what the `latest_forecast` asset does: forecast the hour after the newest
candle with the checkpoint the production pointer names (the zero forecast when nothing is
promoted), append it to the served record once an hour and make it the served row; after a
gap in the candles, keep the old row and flag it with the hour forecasting resumes. Then the
served row's age and the record's figures, written as Markdown beside the gate's record.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from workflows.data.warehouse import append_served_forecast, load_candles, load_features, load_served_forecasts
from workflows.evaluation.forecast_log import interval_history
from workflows.io import write_text_atomic
from workflows.serving.freshness import ForecastAge, mark_unservable, resumes_at, served_forecast, store_forecast
from workflows.serving.promotion import forecast_next_hour, load_current, read_pointer
from workflows.serving.served_record import (
    SERVED_RECORD,
    ServedFigures,
    ServedForecast,
    served_figures,
    served_record_markdown,
    served_row,
)


class NothingServedYet(RuntimeError):
    """The newest hours cannot be forecast and no forecast was ever served."""


@dataclass(frozen=True)
class Served:
    forecast: ServedForecast | None  # None: a gap in the candles; the old row stays, flagged
    appended: bool  # whether the forecast joined the served record (once an hour)
    age: ForecastAge  # of the row now served
    figures: ServedFigures  # how the served record fared
    record: Path  # the served record's Markdown


def serve_next_hour(
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    symbol: str,
    kind: str,
    checkpoints: Path,
    reports: Path,
    now: datetime,
    max_age_hours: float,
) -> Served:
    """Serve `symbol`'s next hour with the production checkpoint under `checkpoints` (the served `kind`'s forecast
    log rows give its intervals) and write the served record under `reports`."""
    with connect() as con:
        table, _ = load_features(con, symbol)  # none: an error saying how to make them
        candles = load_candles(con, symbol)
        history = interval_history(con, symbol, kind)  # the rows the report's intervals come from
    current = load_current(checkpoints)
    resume = resumes_at(candles, table, int(current.window_spec["window"]) if current is not None else 1)
    forecast = forecast_next_hour(current, table, history) if resume is None else None
    with connect() as con:
        appended = forecast is not None and append_served_forecast(con, served_row(symbol, forecast, now))
        if forecast is not None:
            store_forecast(con, symbol, forecast, now)
        elif resume is not None:
            mark_unservable(con, symbol, resume)
        served, record = served_forecast(con, symbol, now, max_age_hours), load_served_forecasts(con, symbol)
    if served is None:  # a gap before anything was ever served
        raise NothingServedYet(f"{symbol}: nothing can be forecast yet: forecasting starts with the hour {resume} UTC")
    figures = served_figures(record, table)
    path = reports / SERVED_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, served_record_markdown(symbol, figures, (read_pointer(checkpoints) or {}).get("gate")))
    return Served(forecast, bool(appended), served[1], figures, path)
