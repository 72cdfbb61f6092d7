"""The `ingest`, `forecast_period` and `refresh_report` jobs on a real Celery executor: a Redis
broker and two workers on loopback land three symbols, train and log one monthly forecast period
each (ci profile, one epoch per training, 70 synthetic days: December 2025 after a 20-day
training window), and refresh their reports, against the same jobs in process.

`forecast_period` trains the period's models and twins and logs their forecasts with the
baselines' and the attention analysis; `refresh_report` is the daily report: the model assets
(the newest period's models), the evaluation of the log, attention tensors and analysis, the
report, the promotion gate and the forecast. Both runs get the same run config.

Same means:
- every checkpoint's weights equal to 1e-6 absolute (training is seeded and every
  training uses one torch thread on CPU, in both runs), its recorded metrics and data
  version equal (clock readings left out). The other steps (the attention analysis trains
  its controls) use one torch thread too: the Celery workers by OMP_NUM_THREADS=1, the test's
  own process by `one_thread` (with two, sums in another order changed the JSON's last digits);
- every file under `reports/<symbol>/` the same: the figures byte for byte;
  `attention_report.md`, after masking its two clock readings (the "Generated <minute> UTC"
  line and the wall seconds that end each model's Training line), word for word, with its
  numbers to 0.1% (EVAL_REL: the GARCH baselines' fits differ in the sixth digit between
  processes, and so does every figure computed from them); the JSON beside it to the same;
- the attention tensors (files under `attention/<symbol>/`) equal;
- the DuckDB rows of every table equal (floats to 1e-9, the evaluation table's to 0.1%;
  the clock columns `*_at` left out, and `attention_summary.file` (stored relative to the
  data folder) compared with its checkpoint digest masked).
"""

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pytest
import torch
import yaml

from benchmarks.celery_cluster import local_cluster, redis_server_path
from benchmarks.celery_jobs import (
    forecast_period_celery_job,
    forecast_period_in_process_job,
    ingest_celery_job,
    ingest_in_process_job,
    refresh_report_celery_job,
    refresh_report_in_process_job,
)
from workflows.attention.extract import load_attention
from workflows.defs.assets_periods import PERIOD_KINDS
from workflows.defs.partitions import period_key
from workflows.evaluation.evidence import MCS_REPS
from workflows.ml.checkpoints import load_checkpoint
from workflows.ml.profiles import model_kinds
from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT, SMALL_PROTOCOL_OPS

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
DAYS = 70  # the synthetic candles end 2026-01-01: December 2025 is the period, 20 training days before it
PERIOD = "2025-12-01"
PERIOD_SETTINGS = {"profile": "ci", "device": "cpu", "train_days": 25, "min_train_days": 20, "val_days": 5}


def test_celery_jobs_mirror_the_in_process_jobs():
    """Each `*_celery` job selects the same assets and partitions as its twin; only the executor differs."""
    from workflows.definitions import defs

    for name in ("ingest", "forecast_period", "refresh_report", "pipeline"):
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


def land_and_report(instance: dg.DagsterInstance, data_dir: Path, ingest, forecast_period, refresh) -> None:
    """The same run configs whatever the executor."""
    period_ops: dict[str, Any] = {
        f"{k}_period_model": {"config": {**PERIOD_SETTINGS, "max_epochs": 1}} for k in PERIOD_KINDS
    }
    period_ops |= SMALL_PROTOCOL_OPS  # the executor is under test, not the evidence's precision
    for i, symbol in enumerate(SYMBOLS):
        key = period_key(symbol, PERIOD)
        period_tags = {"dagster/partition": str(key)} | {
            f"dagster/partition/{dim}": k for dim, k in key.keys_by_dimension.items()
        }
        runs: tuple[tuple[Any, dict[str, Any], dict[str, str]], ...] = (
            (
                ingest,
                {"ops": {"candles": {"config": {"source": "synthetic", "days": DAYS, "seed": 11 + i}}}},
                {"dagster/partition": symbol},
            ),
            (forecast_period, {"ops": period_ops}, period_tags),
            (refresh, {"ops": {"attention_analysis": {"config": {"resamples": 100}}}}, {"dagster/partition": symbol}),
        )
        for target, config, tags in runs:
            config["resources"] = {"warehouse": {"config": {"data_dir": str(data_dir)}}}
            result = dg.execute_job(dg.reconstructable(target), instance=instance, run_config=config, tags=tags)
            assert result.success, (target.__name__, symbol)


TIMING_KEYS = {"wall_s", "samples_per_s", "seconds", "train_seconds"}


def untimed(value):
    """Metrics without the clock readings (wall time, throughput), which differ run to run."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


# The report's only clock readings (workflows/reporting/report.py): when it was written, each model's
# training wall time at the end of its line under "## Training" ...
GENERATED = re.compile(r"^Generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC;", re.MULTILINE)
TRAINING_WALL = re.compile(r"^(- \w+: \d+ epochs, best validation loss at epoch \d+.*; )\d+\.\d s\.$", re.MULTILINE)
# ... and each period row of the per-period table, whose last cell is the period's training seconds.
PERIOD_SECONDS = re.compile(r"^(\| \d+ \| [\d,]+ \| \d{4}-\d{2}-\d{2}T.*\| )\d+ \|$", re.MULTILINE)


CHECKPOINT_DIGEST = re.compile(r"[0-9a-f]{16}\.pt\b")


def masked_report(text: str) -> str:
    text, generated = GENERATED.subn("Generated <clock> UTC;", text)
    text, walls = TRAINING_WALL.subn(r"\1<wall> s.", text)
    text, periods = PERIOD_SECONDS.subn(r"\1<seconds> |", text)
    assert (generated, walls, periods) == (1, len(model_kinds()), 1), "the report's clock readings moved: update masks"
    # the period models' checkpoint files are named by their content, which holds their training wall time
    return CHECKPOINT_DIGEST.sub("<digest>.pt", text)


# The gate's record (workflows/defs/assets_serving.py): when it was decided, on which checkpoint file, and when
# each look in its history table ran (the table's first cell, workflows/serving/gate_record.py).
DECIDED = re.compile(r"^Decided \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", re.MULTILINE)
JUDGED = re.compile(r"^\| \d{4}-\d{2}-\d{2}T\d{2}:\d{2} \|", re.MULTILINE)


def masked_gate_record(text: str) -> str:
    text, decided = DECIDED.subn("Decided <clock> UTC", text)
    text, judged = JUDGED.subn("| <clock> |", text)
    assert decided >= 1 and judged >= 1, "the gate record's clock readings moved: update the masks"
    return CHECKPOINT_DIGEST.sub("<digest>.pt", text)


DIGEST = re.compile(r"-[0-9a-f]{12}\.npz$")

# The GARCH and GJR-GARCH baselines (arch's SLSQP fit) come out different in the sixth digit from
# one process to the next (numpy's vectorised sums are not bit-reproducible across processes), and
# everything computed from them (their QLIKE, the DM tests against them, Mincer-Zarnowitz) with them.
# Numbers derived from the evaluation are therefore compared to 0.1% relative, and the report's
# words exactly: every sentence, verdict and table cell other than a number must be the same.
EVAL_REL = 1e-3
# A Monte Carlo p-value (the model confidence set's bootstrap) counts the resamples whose statistic
# exceeds the observed one: when the losses differ in the sixth digit, a resample whose statistic lies
# that close to the observed one flips, and the p-value moves by 1/reps (seen: 0.334 against 0.333).
# Such p-values are compared to within a few resamples; the words built on them still match exactly.
MONTE_CARLO_P_ABS = 5 / MCS_REPS


def is_monte_carlo_p(where: tuple) -> bool:
    """A bootstrap p-value: the model confidence set's, in evaluation.json or the evaluation table."""
    return "pvalues" in where or any(isinstance(w, str) and w.startswith("mcs.") and w.endswith(".p") for w in where)


NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?")


def words_and_numbers(text: str) -> tuple[str, list[float]]:
    return NUMBER.sub("<n>", text), [float(m.replace(",", "")) for m in NUMBER.findall(text)]


def assert_close(a, b, where) -> None:
    """Equal structure, strings and bools; numbers within EVAL_REL (None for a non-finite number)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], (*where, k))
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, (*where, i))
    elif isinstance(a, float) or isinstance(b, float):
        tolerance = MONTE_CARLO_P_ABS if is_monte_carlo_p(where) else 1e-12
        assert b == pytest.approx(a, rel=EVAL_REL, abs=tolerance), where
    else:
        assert a == b, where


def outputs(instance: dg.DagsterInstance, data_dir: Path) -> dict:
    """Weights per checkpoint, report files, attention tensors and DuckDB rows: what must not depend on the
    executor."""
    weights, metrics, reports, tensors = {}, {}, {}, {}
    for symbol in SYMBOLS:
        for kind in model_kinds():
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(f"{kind}_model"), asset_partitions=[symbol]), limit=1
            ).records
            meta = records[0].asset_materialization.metadata
            path, digest = meta["checkpoint"].value, meta["sha256"].value
            assert isinstance(path, str) and isinstance(digest, str)
            ckpt = load_checkpoint(path, digest)
            weights[(symbol, kind)] = {k: v.detach().clone() for k, v in ckpt.model.state_dict().items()}
            metrics[(symbol, kind)] = (ckpt.data_version, untimed(ckpt.metrics))
        for file in sorted((data_dir / "reports" / symbol).iterdir()):
            # the report: its words (clock readings masked) and its numbers; the JSON parsed; figures as bytes
            if file.name == "attention_report.md":
                reports[(symbol, file.name)] = words_and_numbers(masked_report(file.read_text()))
            elif file.name == "promotion_gate.md":
                reports[(symbol, file.name)] = words_and_numbers(masked_gate_record(file.read_text()))
            elif file.name == "served_record.md":  # the served record beside the promoting decision's figures
                reports[(symbol, file.name)] = words_and_numbers(file.read_text())
            elif file.suffix == ".json":
                reports[(symbol, file.name)] = untimed(json.loads(file.read_text()))  # a period's training seconds
            else:
                reports[(symbol, file.name)] = file.read_bytes()
        for file in sorted((data_dir / "attention" / symbol).glob("*.npz")):
            tensors[(symbol, DIGEST.sub("", file.name))] = load_attention(file)
    rows = {}
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall():
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                # clock readings (`*_at`, `forecast_periods.seconds`, `period_models.wall_s`), and a digest of
                # differently timed files
                if not c.endswith("_at") and c not in TIMING_KEYS and c != "checkpoint_sha256"
            ]
            quoted = ", ".join(f'"{c}"' for c in columns)
            found = con.execute(f"SELECT {quoted} FROM {table} ORDER BY ALL").fetchall()
            if table == "served_forecasts":  # the served checkpoint's file name holds its digest
                at = columns.index("model")
                found = [(*r[:at], CHECKPOINT_DIGEST.sub("<digest>.pt", r[at]), *r[at + 1 :]) for r in found]
            if table == "attention_summary":
                at = columns.index("file")
                found = [(*r[:at], DIGEST.sub("", str(r[at])), *r[at + 1 :]) for r in found]
            rows[table] = found
    return {"weights": weights, "metrics": metrics, "reports": reports, "tensors": tensors, "rows": rows}


def assert_same_rows(a: list[tuple], b: list[tuple], table: str) -> None:
    """Floats to 1e-9; the evaluation's (GARCH-derived among them) and the forecast log's baseline forecasts (the
    GARCH fits) to EVAL_REL."""
    assert len(a) == len(b), table
    for ra, rb in zip(a, b):
        fitted = table == "evaluation" or (table == "forecast_log" and "baseline" in ra)
        rel = EVAL_REL if fitted else 1e-9
        tolerance = MONTE_CARLO_P_ABS if table == "evaluation" and is_monte_carlo_p(ra) else 1e-9
        for va, vb in zip(ra, rb):
            if isinstance(va, float) and isinstance(vb, float):
                assert va == pytest.approx(vb, rel=rel, abs=tolerance, nan_ok=True), (table, ra, rb)
            else:
                assert va == vb, (table, ra, rb)


def assert_same_outputs(expected: dict, got: dict) -> None:
    """What `outputs` read from the in-process run (`expected`) and the Celery run (`got`) is the same."""
    assert expected["weights"].keys() == got["weights"].keys() and len(got["weights"]) == 3 * len(model_kinds())
    for key, state in expected["weights"].items():
        assert state.keys() == got["weights"][key].keys()
        for name, tensor in state.items():
            assert torch.allclose(tensor, got["weights"][key][name], rtol=0, atol=1e-6), (key, name)
    assert expected["metrics"] == got["metrics"]

    assert expected["reports"].keys() == got["reports"].keys()
    for symbol in SYMBOLS:
        names = {name for s, name in got["reports"] if s == symbol}
        assert {"attention_report.md", "evaluation.json", "attention_analysis.json", "training.png"} <= names
    for key, content in expected["reports"].items():
        if key[1] in ("attention_report.md", "promotion_gate.md", "served_record.md"):
            (words, numbers), (got_words, got_numbers) = content, got["reports"][key]
            assert words == got_words, key
            assert got_numbers == pytest.approx(numbers, rel=EVAL_REL, abs=0.011), key  # 2-decimal rounding
        elif key[1].endswith(".json"):
            assert_close(content, got["reports"][key], key)
        else:
            assert content == got["reports"][key], key

    assert expected["tensors"].keys() == got["tensors"].keys() and len(got["tensors"]) == 3 * len(model_kinds())
    for key, arrays in expected["tensors"].items():
        assert arrays.keys() == got["tensors"][key].keys(), key
        for name, array in arrays.items():
            np.testing.assert_allclose(got["tensors"][key][name], array, rtol=0, atol=1e-6, err_msg=str((key, name)))

    assert expected["rows"].keys() == got["rows"].keys()
    assert {"candles", "features", "feature_state", "evaluation", "attention_metrics", "served_forecasts"} <= got[
        "rows"
    ].keys()
    for table in expected["rows"]:
        assert_same_rows(expected["rows"][table], got["rows"][table], table)


@pytest.mark.slow
@pytest.mark.skipif(
    redis_server_path() is None,
    reason="redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)",
)
def test_land_forecast_and_report_on_celery_matches_in_process(tmp_path, monkeypatch, one_thread):
    from workflows.definitions import defs

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WORKFLOWS_CPU_TRAINING_SLOTS", "2")  # one torch thread per training, in both runs

    local_home, local_data = tmp_path / "local" / "home", tmp_path / "local" / "data"
    with make_instance(local_home) as instance:
        land_and_report(
            instance, local_data, ingest_in_process_job, forecast_period_in_process_job, refresh_report_in_process_job
        )
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
            land_and_report(instance, data, ingest_celery_job, forecast_period_celery_job, refresh_report_celery_job)
            logs = {log.name: log.read_text() for log in cluster.logs}
        got = outputs(instance, data)
        assert len(instance.get_runs(dg.RunsFilter(job_name="refresh_report_celery"))) == 3
    # every step ran as a Celery task, and both workers took some
    steps = sum(
        len(defs.resolve_job_def(name).nodes_in_topological_order)
        for name in ("ingest", "forecast_period", "refresh_report")
    )
    # candles, features; the period models and twins, forecasts, period attention; the model assets, 4 analysis and
    # 2 serving assets
    assert steps == 2 + len(PERIOD_KINDS) + 2 + len(model_kinds()) + 6
    tasks = [log.count("succeeded in") for log in logs.values()]
    assert sum(tasks) == 3 * steps and min(tasks) > 0, logs

    assert_same_outputs(expected, got)
    shutil.rmtree(tmp_path / "cluster", ignore_errors=True)


@pytest.mark.skipif(
    redis_server_path() is None,
    reason="redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)",
)
def test_the_shipped_script_starts_its_own_broker_on_a_private_socket_that_refuses_strangers(tmp_path):
    """`scripts/celery_workers.sh --local` (no workers): its Redis listens on no TCP port, only on a unix socket
    in its private folder (0700, files 0600), answers only with the password, and is gone with the folder when
    the script is stopped. A task message names a job the worker imports and runs: nobody else may send one."""
    import select
    import shlex
    import signal
    import socket
    import stat
    import subprocess
    import time

    from celery import Celery
    from kombu.exceptions import OperationalError

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dh"), "WORKFLOWS_DATA_DIR": str(tmp_path / "data")}
    script = subprocess.Popen(
        ["bash", str(PROJECT_ROOT / "scripts" / "celery_workers.sh"), "--local", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 600  # generous: the line comes once Redis answers (seconds on a calm machine)
        assert script.stdout is not None
        while not any("source " in line for line in lines):
            assert script.poll() is None, "".join(lines) + script.stdout.read()
            assert time.monotonic() < deadline, "".join(lines)
            if select.select([script.stdout], [], [], 1.0)[0]:
                lines.append(script.stdout.readline())
        said = next(line for line in lines if "source " in line)
        assert "on the unix socket" in said and "answered an authenticated PING" in said
        broker_env = Path(said.rsplit("source ", 1)[1].strip())
        private = broker_env.parent
        exported = dict(part.split("=", 1) for part in shlex.split(broker_env.read_text())[1:])  # as bash reads it
        broker = exported["WORKFLOWS_CELERY_BROKER"]
        sock = private / "redis.sock"
        assert broker.startswith("redis+socket://:") and broker.endswith(f"@{sock}?virtual_host=0")
        assert stat.S_IMODE(private.stat().st_mode) == 0o700 and stat.S_ISSOCK(sock.stat().st_mode)
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in private.iterdir() if p.name != "redis.sock"}
        assert files == {"redis.conf": 0o600, "redis.log": 0o600, "broker.env": 0o600, "celery.yaml": 0o600}
        assert "port 0\n" in (private / "redis.conf").read_text()  # no TCP listener at all

        with socket.socket(socket.AF_UNIX) as raw:  # a stranger without the password
            raw.connect(str(sock))
            raw.sendall(b"PING\r\n")
            assert raw.recv(200).startswith(b"-NOAUTH Authentication required")
        stranger = Celery(broker=f"redis+socket://{sock}?virtual_host=0")
        with pytest.raises(OperationalError, match="Authentication required"):
            stranger.send_task("dagster_celery.tasks.execute_plan", retry=False)
        insider = Celery(broker=broker)
        assert insider.send_task("dagster_celery.tasks.execute_plan", retry=False).id  # the password opens it
        assert Celery(backend=exported["WORKFLOWS_CELERY_BACKEND"]).backend.client.ping()  # results: db 1, same socket
        password = broker.split(":")[2].split("@")[0]
        assert password not in (private / "redis.log").read_text()
    finally:
        os.killpg(script.pid, signal.SIGTERM)
        script.wait(timeout=HANG_GUARD_S)
    assert not private.exists()  # the password went with the folder
