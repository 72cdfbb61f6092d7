"""Benchmarks, each run with `python -m benchmarks.NAME`; figures go into docs/benchmarks.md."""
