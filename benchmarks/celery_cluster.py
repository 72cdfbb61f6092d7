"""A Redis broker and Celery workers on this machine's loopback, for the distributed test,
the benchmark and `scripts/celery_workers.sh --local`.

A Celery task message names a job that the worker imports and runs, so whoever can write
to the broker can run code as the worker: the local Redis requires a password, generated
here, kept only in files of a private folder (0700, files 0600: the Redis configuration,
never the command line that `ps` shows, and the workers' Celery configuration) that is
removed on exit. Every process started here is ours, stopped by its own process group,
never by name. Across machines: TLS and ACLs, see `docs/deploy.md` and SECURITY.md.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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


def write_private(path: Path, text: str) -> Path:
    """Create `path` readable and writable by its owner only (0600) and write `text`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


@dataclass
class LocalCluster:
    broker: str  # holds the password: pass it through the environment or a 0600 file, never a command line
    backend: str
    config_yaml: Path
    port: int = 0
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
    private = Path(tempfile.mkdtemp(prefix="workflows-redis-"))  # 0700: only this user can list or read it
    password = secrets.token_urlsafe(32)
    redis_conf = write_private(
        private / "redis.conf",
        f"port {port}\nbind 127.0.0.1\nprotected-mode yes\nrequirepass {password}\n"
        f'save ""\nappendonly no\ndir {workdir}\n',
    )
    procs: list[subprocess.Popen] = []
    redis = subprocess.Popen(
        [server, str(redis_conf)], stdout=redis_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for(lambda: "Ready to accept connections" in redis_log.read_text(), "redis-server", 30, [redis_log])
        cluster = LocalCluster(
            broker=f"redis://:{password}@127.0.0.1:{port}/0",
            backend=f"redis://:{password}@127.0.0.1:{port}/1",
            config_yaml=private / "celery.yaml",
            port=port,
        )
        # the same block as a run's executor config
        write_private(
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
        shutil.rmtree(private, ignore_errors=True)  # the password goes with it
