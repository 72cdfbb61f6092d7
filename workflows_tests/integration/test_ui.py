"""End to end: `dg dev` (what `make ui` starts) serves the asset graph, the
schedules and the sensors over GraphQL on 127.0.0.1, and stops cleanly by process id."""

import shutil

import pytest

from benchmarks.devserver import dagster_dev, graphql
from workflows_tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.slow

QUERY = """
{
  assetNodes { assetKey { path } }
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name schedules { name } sensors { name } } }
  }
}
"""


def test_dagster_dev_serves_graph_schedules_and_sensors(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with dagster_dev(home) as server:
        data = graphql(server.port, QUERY)["data"]
        keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert {"candles", "features", "attention_lstm_model", "report", "production_model"} <= keys
        repo = data["repositoriesOrError"]["nodes"][0]
        assert {s["name"] for s in repo["schedules"]} == {"daily_report", "daily_forecasts", "hourly_exchange_ingest"}
        assert "incoming_files" in {s["name"] for s in repo["sensors"]}
    assert server.process.returncode is not None  # stopped by process id
    with pytest.raises(OSError):  # noqa: PT011 (refused or reset: any socket error means nothing answers)
        graphql(server.port, "{ version }")  # nothing listens any more
