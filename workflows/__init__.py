"""Orchestrated, honest attention-model workflow for hourly crypto candles."""

__version__ = "0.1.0"
