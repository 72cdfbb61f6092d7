"""Two runs started at the same moment that both write the DuckDB file both succeed:
the second waits for the first's lock (retry with backoff) instead of failing."""

import os
import subprocess
import sys

import duckdb

from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT

SCRIPT = """
import sys
from workflows.cli.instance import open_instance
from workflows.cli.runs import run_for_symbol
from workflows.defs.assets_data import CandlesConfig
candles = CandlesConfig(source="synthetic", days=200, seed=int(sys.argv[2]))
result = run_for_symbol(open_instance(), sys.argv[1], candles)
sys.exit(0 if result.success else 1)
"""


def test_two_simultaneous_runs_both_succeed(data_dir):
    env = {**os.environ}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, symbol, str(seed)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for symbol, seed in (("BTCUSDT", 1), ("ETHUSDT", 2))
    ]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=HANG_GUARD_S)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        counts = dict(con.execute("SELECT symbol, count(*) FROM candles GROUP BY symbol").fetchall())
    assert counts == {"BTCUSDT": 4800, "ETHUSDT": 4800}
