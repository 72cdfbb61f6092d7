"""The Dagster layer: thin definitions that call the domain code."""
