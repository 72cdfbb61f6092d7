"""Unit tests: the domain code without Dagster, mirroring the package."""
