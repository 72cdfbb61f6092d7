"""The last N days of a symbol's feature rows: what the reproduction of the original 90-day study trains on."""

from datetime import datetime, timedelta

import polars as pl


def select_history(features: pl.DataFrame, history_days: int | None) -> pl.DataFrame:
    """The last `history_days` days of one symbol's feature rows: every row whose hour is within
    `history_days` x 24 hours of the newest one. None or 0: all rows."""
    if history_days is not None and history_days < 0:
        raise ValueError(f"history_days must be positive (or 0 for all history), got {history_days}")
    if not history_days or features.is_empty():
        return features
    newest = features["ts"].max()
    assert isinstance(newest, datetime), f"features.ts must hold datetimes, got {newest!r}"
    cutoff = newest - timedelta(days=history_days)
    return features.filter(pl.col("ts") > cutoff)
