"""Integration tests: Dagster definitions and runs, the CLI, faults, the UI, the distributed executor."""
