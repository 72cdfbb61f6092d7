"""Test helpers (not installed): where the project and the real exports are. The local dev server,
the Celery cluster and the job wrappers a Celery worker reconstructs live in benchmarks/ (the tests and
the benchmarks both use them; benchmarks import nothing from the tests)."""

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
BTC_FILE = SHARED_DATA / "Binance_BTCUSDT_1h.csv"
ETH_FILE = SHARED_DATA / "Binance_ETHUSDT_1h.csv"

# How long a test waits on a subprocess, a thread or a server before calling it hung. A guard against a
# hang, never a speed limit: on a busy 2-core machine loading the definitions in a fresh interpreter took
# over 120 s. Tests wait on events (a line printed, a file written) and use this only as the last resort.
HANG_GUARD_S = 1800

# The smallest attention protocol `period_attention` accepts (19 draws: p < 0.05 still reachable): for tests that
# run a forecast period to check what the executor, the workers or a restart change, not the evidence's precision.
# A run's defaults spend 304 deletion passes over up to 1,000 windows per model; this spends 40 over 96.
SMALL_PROTOCOL = {"deletion_draws": 19, "random_draws": 19, "deletion_windows": 96, "resamples": 100}
SMALL_PROTOCOL_OPS = {"period_attention": {"config": SMALL_PROTOCOL}}

needs_shared = pytest.mark.skipif(
    not BTC_FILE.exists(), reason="../shared/data is absent (a user's fresh clone has no ../shared)"
)
