"""deploy/k8s-executor.yaml is valid run config for dagster-k8s's k8s_job_executor on the
forecast_period job (where the models train): checked against the executor's own config schema
(dg.validate_run_config)."""

import copy

import dagster as dg
import pytest
import yaml
from dagster_k8s import k8s_job_executor

from workflows.definitions import defs
from workflows.defs.jobs import forecast_period_job
from workflows_tests.helpers import PROJECT_ROOT

CONFIG = yaml.safe_load((PROJECT_ROOT / "deploy" / "k8s-executor.yaml").read_text())


@pytest.fixture(scope="module")
def period_on_k8s() -> dg.JobDefinition:
    job = dg.define_asset_job(
        "forecast_period_k8s",
        selection=forecast_period_job.selection,  # the partitions follow from the selection
        executor_def=k8s_job_executor,
    )
    assets = defs.assets
    assert assets is not None
    return dg.Definitions(assets=list(assets), jobs=[job], resources=defs.resources).resolve_job_def(
        "forecast_period_k8s"
    )


def test_k8s_executor_config_validates(period_on_k8s):
    dg.validate_run_config(period_on_k8s, CONFIG)
    # per-step GPU requests name real steps of the job (the schema cannot check that)
    steps = {node.name for node in period_on_k8s.nodes_in_topological_order}
    assert set(CONFIG["execution"]["config"]["per_step_k8s_config"]) <= steps


def test_a_broken_k8s_config_is_refused(period_on_k8s):
    broken = copy.deepcopy(CONFIG)
    broken["execution"]["config"]["max_concurrent"] = "eight"
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurrent"):
        dg.validate_run_config(period_on_k8s, broken)
    unknown = copy.deepcopy(CONFIG)
    unknown["execution"]["config"]["gpus_please"] = 1
    with pytest.raises(dg.DagsterInvalidConfigError, match="gpus_please"):
        dg.validate_run_config(period_on_k8s, unknown)


def test_no_secret_is_copied_into_the_step_pods_spec(period_on_k8s):
    """Secrets reach the step pods by reference (`env_secrets`), never through `env_vars`, whose bare names
    copy the launching process's values into every pod spec."""
    config = CONFIG["execution"]["config"]
    names = [entry.split("=", 1)[0] for entry in config["env_vars"]]
    assert not [n for n in names if any(word in n.upper() for word in ("PASSWORD", "SECRET", "TOKEN", "KEY"))]
    assert all("=" in entry for entry in config["env_vars"])  # only literal, non-secret values
    assert config["env_secrets"] == ["workflows-postgres-password"]
    # the instance (deploy/dagster.yaml) reads every DAGSTER_PG_* it needs from the environment those provide
    instance = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    wanted = {v["env"] for v in instance["storage"]["postgres"]["postgres_db"].values() if isinstance(v, dict)}
    assert wanted == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
