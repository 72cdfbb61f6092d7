"""Which hours of a symbol's feature rows the models, the evaluation and the attention analysis see."""

from datetime import datetime, timedelta

import polars as pl


def select_history(features: pl.DataFrame, history_days: int | None) -> pl.DataFrame:
    """The last `history_days` days of one symbol's feature rows: every row whose hour is within
    `history_days` x 24 hours of the newest one. None or 0: all rows. The one place that decides which
    hours the models, the evaluation and the attention analysis see, so they agree."""
    if history_days is not None and history_days < 0:
        raise ValueError(f"history_days must be positive (or 0 for all history), got {history_days}")
    if not history_days or features.is_empty():
        return features
    newest = features["ts"].max()
    assert isinstance(newest, datetime), f"features.ts must hold datetimes, got {newest!r}"
    cutoff = newest - timedelta(days=history_days)
    return features.filter(pl.col("ts") > cutoff)


def history_version(version: str, history_days: int | None) -> str:
    """The data version of a selection: the table's content hash plus the window, so a model trained on
    the last 90 days is never evaluated on all history (or the other way round) without saying so."""
    return f"{version}-last{history_days}d" if history_days else version
