"""`workflows demo` end to end: this tree against a reference commit, on the same machine.

Each run: a fresh data folder, Dagster home and training-slot lock folder, `workflows demo` with the
default arguments, timed by `/usr/bin/time`-like accounting (wall, user + system CPU of the process and its
children, peak RSS) and the CLI's own per-step wall times. The reference commit is exported with
`git archive` into a temporary folder and run with this venv's Python (`PYTHONPATH` puts its package first).
Runs alternate (reference, this tree, reference, ...) so that both see the same load.

    nice -n 10 .venv/bin/python -m benchmarks.demo --reference 660fe22 [--repeats 1] [--together]

`--together` starts the two runs of a repeat at the same moment instead of one after the other (on a
machine whose load other work sets, both then see the same load; each gets less of it).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
STEP = re.compile(r"^\s+ok\s+(\S+)\s+([\d.]+) s", re.M)


def export(commit: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def start(tree: Path, scratch: Path, args: list[str]) -> subprocess.Popen:
    scratch.mkdir(parents=True)
    (scratch / "home").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "PYTHONUNBUFFERED": "1",
        "WORKFLOWS_DATA_DIR": str(scratch / "data"),
        "DAGSTER_HOME": str(scratch / "home"),
        "WORKFLOWS_DEVICE_LOCK_DIR": str(scratch / "locks"),
    }
    log = open(scratch / "log.txt", "w")  # noqa: SIM115 (closed by the caller through the process)
    cmd = ["/usr/bin/time", "-f", "TIME %e %U %S %M", sys.executable, "-m", "workflows.cli.commands", "demo", *args]
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)


def result(scratch: Path) -> dict:
    text = (scratch / "log.txt").read_text()
    wall, user, system, peak = re.findall(r"^TIME (\S+) (\S+) (\S+) (\S+)$", text, re.M)[-1]
    return {
        "wall": float(wall),
        "cpu": float(user) + float(system),
        "peak_mib": int(peak) / 1024,
        "steps": {name: float(s) for name, s in STEP.findall(text)},
        "finding": [line.strip() for line in text.splitlines() if "Bottom line" in line or "planted" in line][:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", default="660fe22", help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--together", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"reference": [], "this tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"reference": export(args.reference, Path(tmp) / "reference"), "this tree": ROOT}
        for i in range(args.repeats):
            order = list(trees) if i % 2 == 0 else list(trees)[::-1]
            runs = {}
            for name in order:
                runs[name] = (start(trees[name], Path(tmp) / f"{name.replace(' ', '_')}-{i}", []), time.time())
                if not args.together:
                    runs[name][0].wait()
            for name, (proc, _) in runs.items():
                if proc.wait() != 0:
                    raise SystemExit(f"{name}: the demo failed; see its log under {tmp}")
                rows[name].append(result(Path(tmp) / f"{name.replace(' ', '_')}-{i}"))
                print(name, rows[name][-1])
    load = os.getloadavg()[0]
    lines = [
        f"Measured with `python -m benchmarks.demo --reference {args.reference} --repeats {args.repeats}"
        + (" --together" if args.together else "")
        + f"` on {machine()}; 1-minute load average at the end {load:.1f}.",
        "",
        "| tree | wall s | CPU s (user + system) | peak RSS MiB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, runs in rows.items():
        for r in runs:
            lines.append(f"| {name} | {r['wall']:.0f} | {r['cpu']:.0f} | {r['peak_mib']:.0f} |")
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", "bench_demo", "`make demo` before and after", "\n".join(lines))


if __name__ == "__main__":
    main()
