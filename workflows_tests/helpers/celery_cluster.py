"""A Redis broker and Celery workers on this machine's loopback, for the distributed test,
the benchmark and `scripts/celery_workers.sh --local`.

Every process started here is ours, stopped by its own process group, never by name.
Across machines the same pieces run on different hosts: see `docs/deploy.md`.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from workflows.io import write_text_atomic

REDIS_SERVER = "redis-server"


def redis_server_path() -> str | None:
    return shutil.which(REDIS_SERVER)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@dataclass
class LocalCluster:
    broker: str
    backend: str
    config_yaml: Path
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def executor_config(self) -> dict:
        return {"broker": self.broker, "backend": self.backend}

    def process_ids(self) -> list[int]:
        return [w.pid for w in self.workers]


def _wait_for(predicate, what: str, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text()[-2000:] if p.exists() else ''}" for p in logs)
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s\n{tails}")
        time.sleep(0.2)


@contextmanager
def local_cluster(
    workdir: Path, workers: int = 2, env: dict[str, str] | None = None, ready_timeout_s: float = 90.0
) -> Iterator[LocalCluster]:
    """Start redis-server on a free loopback port and `workers` dagster-celery workers (one task
    at a time each, `--pool solo`); stop all of them on exit.

    `env` is added to each worker's environment: it must hold the shared DAGSTER_HOME and
    WORKFLOWS_DATA_DIR the runs use."""
    server = redis_server_path()
    if server is None:
        raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    redis_log = workdir / "redis.log"
    redis = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=redis_log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    procs: list[subprocess.Popen] = []
    try:
        _wait_for(lambda: "Ready to accept connections" in redis_log.read_text(), "redis-server", 30, [redis_log])
        cluster = LocalCluster(
            broker=f"redis://127.0.0.1:{port}/0",
            backend=f"redis://127.0.0.1:{port}/1",
            config_yaml=workdir / "celery.yaml",
        )
        # the same block as a run's executor config
        write_text_atomic(
            cluster.config_yaml,
            f"execution:\n  config:\n    broker: {cluster.broker}\n    backend: {cluster.backend}\n",
        )
        bin_dir = str(Path(sys.executable).parent)
        worker_env = {**os.environ, **(env or {})}
        worker_env["PATH"] = bin_dir + os.pathsep + worker_env.get("PATH", "")
        # a worker resolves the job's executor config too: the same broker settings as the launcher
        worker_env["WORKFLOWS_CELERY_BROKER"], worker_env["WORKFLOWS_CELERY_BACKEND"] = cluster.broker, cluster.backend
        for i in range(workers):
            log = workdir / f"worker{i}.log"
            proc = subprocess.Popen(
                [
                    str(Path(bin_dir) / "dagster-celery"),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-y",
                    str(cluster.config_yaml),
                    "-n",
                    f"w{i}@%h",
                    "--",
                    "--pool",
                    "solo",
                ],
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                env=worker_env,
                start_new_session=True,
            )
            procs.append(proc)
            cluster.workers.append(proc)
            cluster.logs.append(log)
            # one at a time: two workers on a fresh SQLite instance would both create its tables
            _wait_for(
                lambda log=log, proc=proc: " ready." in log.read_text() or proc.poll() is not None,
                f"celery worker ({log.name})",
                ready_timeout_s,
                cluster.logs,
            )
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        yield cluster
    finally:
        for proc in procs:
            _stop(proc)
        _stop(redis)
