"""A new month's training of many symbols: the `forecast_period` job of December 2025 (the
six models and three no-attention twins trained, the forecasts logged with the baselines', the
period's attention analysis; ci profile, 20 training days) of 1, 3 and 10 synthetic symbols, in
process and on the Celery executor (`forecast_period_celery`: Redis + 2 workers on loopback),
one torch thread per training in both, with the ratio and the peak memory (summed RSS of every
process involved, sampled every 0.2 s). Writes a section of docs/benchmarks.md.

    .venv/bin/python -m benchmarks.distributed [--symbols 1 3 10] [--days 70]

Each case runs in fresh processes on a fresh instance and data folder; candles and
features are landed first (in process, not timed). In process: one run per symbol, the
steps one after another. Celery: one run per symbol, its steps spread over the workers
(one step at a time each). `WORKFLOWS_CPU_TRAINING_SLOTS=2` in both: one torch thread per
training.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks.celery_cluster import local_cluster, redis_server_path  # noqa: E402
from benchmarks.common import machine, write_section  # noqa: E402

STANDARD_CASES = (1, 3, 10)  # what `make bench` records
PERIOD = "2025-12-01"  # the synthetic candles end 2026-01-01
PERIOD_SETTINGS = {"profile": "ci", "device": "cpu", "train_days": 25, "min_train_days": 20, "val_days": 5}


def _rss_tree_kb(roots: list[int]) -> int:
    """Summed VmRSS of `roots` and all their descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack, seen = 0, list(roots), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakSampler:
    def __init__(self, roots_fn):
        self.roots_fn, self.peak_kb, self._stop = roots_fn, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _rss_tree_kb(self.roots_fn()))
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_case(mode: str, symbols: list[str], home: Path, data: Path, days: int) -> None:
    """In a fresh process: land the symbols in process, then time `forecast_period` (in process or on Celery)."""
    import dagster as dg

    from benchmarks.celery_jobs import (
        forecast_period_celery_job,
        forecast_period_in_process_job,
        ingest_in_process_job,
    )
    from workflows.defs.assets_periods import PERIOD_KINDS
    from workflows.defs.partitions import period_key

    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("symbols", symbols)
    resources = {"warehouse": {"config": {"data_dir": str(data)}}}
    for i, symbol in enumerate(symbols):
        config = {"ops": {"candles": {"config": {"source": "synthetic", "days": days, "seed": 100 + i}}}}
        result = dg.execute_job(
            dg.reconstructable(ingest_in_process_job),
            instance=instance,
            run_config={**config, "resources": resources},
            tags={"dagster/partition": symbol},
        )
        assert result.success, symbol
    target = forecast_period_celery_job if mode == "celery" else forecast_period_in_process_job
    config = {"ops": {f"{k}_period_model": {"config": PERIOD_SETTINGS} for k in PERIOD_KINDS}}
    print("TIMING_START", time.time(), flush=True)
    for symbol in symbols:
        key = period_key(symbol, PERIOD)
        result = dg.execute_job(
            dg.reconstructable(target),
            instance=instance,
            run_config={**config, "resources": resources},
            tags={"dagster/partition": str(key)}
            | {f"dagster/partition/{dim}": k for dim, k in key.keys_by_dimension.items()},
        )
        assert result.success, symbol
    print("TIMING_END", time.time(), flush=True)


def measure(mode: str, n: int, days: int, threads_divisor: int = 2) -> dict:
    symbols = [f"S{i:02d}USDT" for i in range(n)]
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as tmp:
        tmp = Path(tmp)
        home, data = tmp / "home", tmp / "data"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "WORKFLOWS_DATA_DIR": str(data),
            "WORKFLOWS_DEVICE_LOCK_DIR": str(tmp / "locks"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        # one torch thread per training in both modes: the ratio is the executor's parallelism
        env["WORKFLOWS_CPU_TRAINING_SLOTS"] = str(threads_divisor)
        cmd = [sys.executable, __file__, "--case", json.dumps([mode, symbols, str(home), str(data), days])]
        roots: list[int] = []

        def launch(extra_env: dict) -> tuple[str, int]:
            proc = subprocess.Popen(
                cmd,
                env={**env, **extra_env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            roots.append(proc.pid)
            out, _ = proc.communicate()
            return out, proc.returncode

        with PeakSampler(lambda: list(roots)) as sampler:
            if mode == "celery":
                worker_env = {k: env[k] for k in ("DAGSTER_HOME", "WORKFLOWS_DATA_DIR", "PYTHONPATH")}
                worker_env.update(WORKFLOWS_CPU_TRAINING_SLOTS="2", WORKFLOWS_DEVICE_LOCK_DIR=str(tmp / "locks"))
                worker_env["OMP_NUM_THREADS"] = "1"
                with local_cluster(tmp / "cluster", workers=2, env=worker_env) as cluster:
                    roots.extend(cluster.process_ids())
                    out, rc = launch(
                        {"WORKFLOWS_CELERY_BROKER": cluster.broker, "WORKFLOWS_CELERY_BACKEND": cluster.backend}
                    )
            else:
                out, rc = launch({})
        if rc:
            raise RuntimeError(f"{mode} x {n} failed (exit {rc}):\n{out[-3000:]}")
        marks = {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line.startswith("TIMING_")}
    return {"seconds": marks["TIMING_END"] - marks["TIMING_START"], "peak_mb": sampler.peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, nargs="+", default=list(STANDARD_CASES))
    parser.add_argument("--days", type=int, default=70, help="synthetic days per symbol (70: 20 training days)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        mode, symbols, home, data, days = json.loads(args.case)
        run_case(mode, symbols, Path(home), Path(data), days)
        return
    if redis_server_path() is None:
        sys.exit("redis-server is not installed (apt-get install redis-server): the Celery cases cannot run")
    loads: list[float] = []
    rows: list[tuple[int, dict]] = []
    for n in args.symbols:
        results = {}
        for mode in ("in_process", "celery"):
            runs = [measure(mode, n, args.days) for _ in range(args.repeats)]
            loads.append(os.getloadavg()[0])
            results[mode] = {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peak_mb": max(r["peak_mb"] for r in runs),
            }
            print(f"{n} symbol(s), {mode}: {results[mode]['seconds']:.1f} s, peak {results[mode]['peak_mb']:.0f} MB")
        rows.append((n, results))
        # written after every case: a run stopped part way still records what it measured
        write_section(
            Path(args.out),
            "bench_distributed",
            "A new month's training of many symbols: in process vs Celery (`benchmarks/distributed.py`)",
            section(rows, loads, args, not_run=[m for m in args.symbols if m not in {r[0] for r in rows}]),
        )


def section(rows: list[tuple[int, dict]], loads: list[float], args, not_run: list[int]) -> str:
    not_run = sorted(set(not_run) | {n for n in STANDARD_CASES if n not in args.symbols})
    table = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
        f"{'median of ' + str(args.repeats) + ' runs' if args.repeats > 1 else 'one run'} per case; 1-minute load "
        f"average {min(loads):.1f} to {max(loads):.1f} while it ran (the machine is shared with other sessions).",
        "",
        f"`forecast_period` of {PERIOD[:7]} (per symbol: six models and three twins trained, forecasts logged with the "
        f"baselines', the period's attention analysis; ci profile, {args.days} synthetic days per symbol), "
        "one run per symbol. In process: steps one after another. Celery (`forecast_period_celery`): Redis and 2 "
        "workers on "
        "loopback (`--pool solo`). One torch thread per training in both (`WORKFLOWS_CPU_TRAINING_SLOTS=2`). Peak "
        "memory: summed RSS of the launching process and every worker (Redis left out).",
        "",
        "| symbols | in process (s) | Celery, 2 workers (s) | Celery / in process | peak MB in process "
        "| peak MB Celery |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, r in rows:
        a, b = r["in_process"], r["celery"]
        table.append(
            f"| {n} | {a['seconds']:.1f} | {b['seconds']:.1f} | {b['seconds'] / a['seconds']:.2f} | "
            f"{a['peak_mb']:.0f} | {b['peak_mb']:.0f} |"
        )
    if not_run:
        cases = ", ".join(f"{n} symbol{'s' if n > 1 else ''}" for n in not_run)
        table += ["", f"Not run in this measurement: {cases}."]
    return "\n".join(table)


if __name__ == "__main__":
    main()
