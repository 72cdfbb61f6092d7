"""The data layer: candle sources, ingest, quality checks, schemas, features and their state,
the DuckDB warehouse, retention."""
