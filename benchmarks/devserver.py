"""Start `dg dev` (what `make ui` runs) or `dagster dev -w workspace.yaml` on 127.0.0.1, wait
until it serves the asset graph, and stop it by process id. Shared by the UI tests and the
start-up benchmark (test helpers: not part of the installed package)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workflows.settings import PROJECT_ROOT

ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, timeout: float = 10) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class DevServer:
    port: int
    process: subprocess.Popen
    startup_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def dagster_dev(dagster_home: str | os.PathLike, timeout: float = 150, via: str = "dg") -> Iterator[DevServer]:
    """Webserver + daemon in their own process group; stopped with SIGTERM to that group
    (SIGKILL after 60 s), never by name. `via="dg"`: `dg dev` reading `[tool.dg]` (make ui);
    `via="workspace"`: `dagster dev -w workspace.yaml`."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    if via == "dg":
        command = [str(bin_dir / "dg"), "dev", "--use-active-venv"]
    elif via == "workspace":
        command = [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml"]
    else:
        raise ValueError(f"via must be 'dg' or 'workspace', not {via!r}")
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["env", "--default-signal=INT,TERM", *command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            try:
                if graphql(port, ASSETS_QUERY, timeout=5)["data"]["assetNodes"]:
                    break
            except (OSError, KeyError, TypeError, ValueError):
                pass
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"dagster dev did not serve the asset graph within {timeout:.0f} s")
            time.sleep(0.25)
        yield DevServer(port, proc, time.perf_counter() - started)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
