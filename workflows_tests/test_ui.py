"""End to end: `dagster dev` (what `make ui` starts) serves the asset graph, the
schedules and the sensors over GraphQL on 127.0.0.1, and stops cleanly by process id."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from workflows_tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

QUERY = """
{
  assetNodes { assetKey { path } }
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name schedules { name } sensors { name } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_dagster_dev_serves_graph_schedules_and_sensors(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.Popen(
        ["env", "--default-signal=INT,TERM", str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline, data = time.time() + 150, None
        while time.time() < deadline:
            try:
                data = graphql(port, QUERY)["data"]
                if data["assetNodes"]:
                    break
            except (OSError, KeyError, TypeError, ValueError):
                pass
            time.sleep(1.0)
        assert data and data["assetNodes"], "the webserver did not answer within 150 s"
        keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert {"candles", "features", "attention_lstm_model", "report", "production_model"} <= keys
        repo = data["repositoriesOrError"]["nodes"][0]
        assert {s["name"] for s in repo["schedules"]} == {"daily_retrain", "hourly_exchange_ingest"}
        assert "incoming_files" in {s["name"] for s in repo["sensors"]}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # by process id (its group), never by name
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode is not None
    with pytest.raises(OSError):
        graphql(port, "{ version }")  # nothing listens any more
