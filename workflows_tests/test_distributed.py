"""The `ingest` and `train_models` jobs on a real Celery executor: a Redis broker and two
workers on loopback land and retrain three symbols (ci profile, 30 synthetic days each),
against the same jobs in process.

Same means: every checkpoint's weights equal to 1e-6 absolute (training is seeded and
every training uses one torch thread on CPU, in both runs), the checkpoints' recorded
metrics and data versions equal, and the DuckDB rows of every table equal (floats to
1e-9; the clock columns `*_at` left out). The `retrain` job (evaluation, attention
analysis, report) runs on the same executor but takes minutes per symbol on 2 cores, so
the report is not part of this test.
"""

import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import torch
import yaml

from workflows.celery_cluster import local_cluster, redis_server_path
from workflows.defs.executors import ingest_celery_job, ingest_in_process_job, train_celery_job, train_in_process_job
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.profiles import MODEL_KINDS
from workflows_tests.conftest import PROJECT_ROOT

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]


def test_celery_jobs_mirror_the_in_process_jobs():
    """Each `*_celery` job selects the same assets and partitions as its twin; only the executor differs."""
    from workflows.definitions import defs

    for name in ("ingest", "train_models", "retrain", "pipeline"):
        local, celery = defs.resolve_job_def(name), defs.resolve_job_def(f"{name}_celery")
        assert celery.executor_def.name == "celery_redis" and local.executor_def.name != "celery_redis"
        assert {n.name for n in celery.nodes_in_topological_order} == {n.name for n in local.nodes_in_topological_order}
        assert celery.partitions_def == local.partitions_def


def make_instance(home: Path) -> dg.DagsterInstance:
    """A persistent instance (SQLite under `home`: the workers open the same one)."""
    home.mkdir(parents=True)
    config = yaml.safe_load((PROJECT_ROOT / "dagster_home" / "dagster.yaml").read_text())
    config.pop("run_coordinator", None)  # runs here are executed directly, not queued for a daemon
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(home))
    instance.add_dynamic_partitions("symbols", SYMBOLS)
    return instance


def land_and_train(instance: dg.DagsterInstance, data_dir: Path, ingest, train) -> None:
    for i, symbol in enumerate(SYMBOLS):
        for target, config in (
            (ingest, {"ops": {"candles": {"config": {"source": "synthetic", "days": 30, "seed": 11 + i}}}}),
            (train, {"ops": {f"{k}_model": {"config": {"profile": "ci", "device": "cpu"}} for k in MODEL_KINDS}}),
        ):
            config["resources"] = {"warehouse": {"config": {"data_dir": str(data_dir)}}}
            result = dg.execute_job(
                dg.reconstructable(target), instance=instance, run_config=config, tags={"dagster/partition": symbol}
            )
            assert result.success, (target.__name__, symbol)


TIMING_KEYS = {"wall_s", "samples_per_s", "seconds", "train_seconds"}


def untimed(value):
    """Metrics without the clock readings (wall time, throughput), which differ run to run."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def outputs(instance: dg.DagsterInstance, data_dir: Path) -> dict:
    """Weights per checkpoint, report text, and DuckDB rows: what must not depend on the executor."""
    weights, metrics = {}, {}
    for symbol in SYMBOLS:
        for kind in MODEL_KINDS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(f"{kind}_model"), asset_partitions=[symbol]), limit=1
            ).records
            meta = records[0].asset_materialization.metadata
            path, digest = meta["checkpoint"].value, meta["sha256"].value
            assert isinstance(path, str) and isinstance(digest, str)
            ckpt = load_checkpoint(path, digest)
            weights[(symbol, kind)] = {k: v.detach().clone() for k, v in ckpt.model.state_dict().items()}
            metrics[(symbol, kind)] = (ckpt.data_version, untimed(ckpt.metrics))
    rows = {}
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall():
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if not c.endswith("_at")
            ]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows[table] = con.execute(f"SELECT {quoted} FROM {table} ORDER BY ALL").fetchall()
    return {"weights": weights, "metrics": metrics, "rows": rows}


def assert_same_rows(a: list[tuple], b: list[tuple], table: str) -> None:
    assert len(a) == len(b), table
    for ra, rb in zip(a, b):
        for va, vb in zip(ra, rb):
            if isinstance(va, float) and isinstance(vb, float):
                assert va == pytest.approx(vb, rel=1e-9, abs=1e-9, nan_ok=True), (table, ra, rb)
            else:
                assert va == vb, (table, ra, rb)


@pytest.mark.slow
@pytest.mark.skipif(
    redis_server_path() is None,
    reason="redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)",
)
def test_land_and_retrain_on_celery_matches_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WORKFLOWS_CPU_TRAINING_SLOTS", "2")  # one torch thread per training, in both runs
    monkeypatch.setenv("WORKFLOWS_DEVICE_LOCK_DIR", str(tmp_path / "locks"))

    local_home, local_data = tmp_path / "local" / "home", tmp_path / "local" / "data"
    with make_instance(local_home) as instance:
        land_and_train(instance, local_data, ingest_in_process_job, train_in_process_job)
        expected = outputs(instance, local_data)

    home, data = tmp_path / "celery" / "home", tmp_path / "celery" / "data"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with make_instance(home) as instance:
        env = {
            "DAGSTER_HOME": str(home),
            "WORKFLOWS_DATA_DIR": str(data),
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        with local_cluster(tmp_path / "cluster", workers=2, env=env) as cluster:
            monkeypatch.setenv("WORKFLOWS_CELERY_BROKER", cluster.broker)
            monkeypatch.setenv("WORKFLOWS_CELERY_BACKEND", cluster.backend)
            land_and_train(instance, data, ingest_celery_job, train_celery_job)
            logs = {log.name: log.read_text() for log in cluster.logs}
        got = outputs(instance, data)
        assert len(instance.get_runs(dg.RunsFilter(job_name="train_models_celery"))) == 3
    # every step ran as a Celery task, and both workers took some
    tasks = [log.count("succeeded in") for log in logs.values()]
    assert sum(tasks) == 3 * (2 + len(MODEL_KINDS)) and min(tasks) > 0, logs

    assert expected["weights"].keys() == got["weights"].keys() and len(got["weights"]) == 3 * len(MODEL_KINDS)
    for key, state in expected["weights"].items():
        assert state.keys() == got["weights"][key].keys()
        for name, tensor in state.items():
            assert torch.allclose(tensor, got["weights"][key][name], rtol=0, atol=1e-6), (key, name)
    assert expected["metrics"] == got["metrics"]
    assert expected["rows"].keys() == got["rows"].keys()
    assert {"candles", "features", "feature_state"} <= got["rows"].keys()
    for table in expected["rows"]:
        assert_same_rows(expected["rows"][table], got["rows"][table], table)
    shutil.rmtree(tmp_path / "cluster", ignore_errors=True)
