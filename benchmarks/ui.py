"""UI start-up time: seconds from launch until GraphQL lists the assets, for `dg dev` (what
`make ui` runs, reading `[tool.dg]`) and `dagster dev -w workspace.yaml`, each on a fresh
DAGSTER_HOME, alternating so that machine load falls on both alike.

.venv/bin/python -m benchmarks.ui [--repeats 3] [--note "what else ran"]
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

from benchmarks.common import machine, write_section  # noqa: E402
from benchmarks.devserver import dagster_dev  # noqa: E402


def start_once(via: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", Path(home) / "dagster.yaml")
        with dagster_dev(home, timeout=180, via=via) as server:
            return server.startup_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--note", default="", help="the machine's load while measuring, said beside the figures")
    args = parser.parse_args()
    commands = {"dg": "`dg dev` (make ui)", "workspace": "`dagster dev -w workspace.yaml`"}
    times: dict[str, list[float]] = {via: [] for via in commands}
    for _ in range(args.repeats):
        for via in commands:
            times[via].append(start_once(via))
            print(via, f"{times[via][-1]:.1f} s", flush=True)
    rows = [
        f"| {label} | {statistics.median(times[via]):.1f} | {', '.join(f'{t:.1f}' for t in times[via])} |"
        for via, label in commands.items()
    ]
    ratio = statistics.median(times["dg"]) / statistics.median(times["workspace"])
    body = "\n".join(
        [
            f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}"
            + (f" ({args.note})" if args.note else "")
            + ": seconds from launch (webserver + daemon, fresh DAGSTER_HOME) until GraphQL serves the asset graph.",
            "",
            "| command | median s | runs s |",
            "| --- | ---: | --- |",
            *rows,
            "",
            f"`dg dev` / `dagster dev -w`: {ratio:.2f}.",
        ]
    )
    print(body)
    write_section(Path(args.out), "bench_ui", "UI start-up (`benchmarks/ui.py`)", body)


if __name__ == "__main__":
    main()
