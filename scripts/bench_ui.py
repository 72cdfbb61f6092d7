"""`dagster dev` start-up time: seconds from launch until GraphQL lists the assets.

    .venv/bin/python scripts/bench_ui.py [--repeats 3]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import machine, write_section  # noqa: E402


def start_once() -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as home:
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", Path(home) / "dagster.yaml")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", str(ROOT / ".venv" / "bin" / "dagster"), "dev", "-h", "127.0.0.1",
             "-p", str(port), "-w", "workspace.yaml"], cwd=ROOT, env={**os.environ, "DAGSTER_HOME": home},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while time.perf_counter() - t0 < 180:
                try:
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                                 data=json.dumps({"query": "{ assetNodes { id } }"}).encode(),
                                                 headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        if json.loads(r.read())["data"]["assetNodes"]:
                            return time.perf_counter() - t0
                except (OSError, KeyError, TypeError, ValueError):
                    time.sleep(0.25)
            raise RuntimeError("dagster dev did not answer within 180 s")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    times = [start_once() for _ in range(args.repeats)]
    body = (f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}: `dagster dev` (webserver + daemon, "
            f"fresh DAGSTER_HOME) answers GraphQL with the asset graph after a median of "
            f"{statistics.median(times):.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)} s).")
    print(body)
    write_section(Path(args.out), "bench_ui", "UI start-up (`scripts/bench_ui.py`)", body)


if __name__ == "__main__":
    main()
