"""`dagster dev` start-up time: seconds from launch until GraphQL lists the assets.

.venv/bin/python scripts/bench_ui.py [--repeats 3]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import machine, write_section  # noqa: E402

from workflows_tests.devserver import dagster_dev  # noqa: E402


def start_once() -> float:
    with tempfile.TemporaryDirectory() as home:
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", Path(home) / "dagster.yaml")
        with dagster_dev(home, timeout=180) as server:
            return server.startup_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    times = [start_once() for _ in range(args.repeats)]
    body = (
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}: `dagster dev` (webserver + daemon, "
        f"fresh DAGSTER_HOME) answers GraphQL with the asset graph after a median of "
        f"{statistics.median(times):.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)} s)."
    )
    print(body)
    write_section(Path(args.out), "bench_ui", "UI start-up (`scripts/bench_ui.py`)", body)


if __name__ == "__main__":
    main()
