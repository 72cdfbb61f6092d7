"""Ctrl-C is a normal event in `workflows demo` / `run`: the run is canceled in the instance, the terminal says
what was kept and how to resume, the process exits 130 without a traceback or an abort, and the resumed run
trains nothing already trained. A fresh DAGSTER_HOME gets the project's dagster.yaml from the CLI."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from workflows.cli.instance import write_instance_config
from workflows_tests.helpers import PROJECT_ROOT

QUICK = ["--days", "72", "--profile", "ci", "--periods", "1", "--min-train-days", "15", "--max-epochs", "1"]


def _cli(args: list[str], session: bool = False) -> subprocess.Popen:
    """The CLI in a process of its own (`session`: in a session and process group of its own, as a terminal starts
    a command: Ctrl-C then reaches every process of the group)."""
    code = f"import sys\nfrom workflows.cli.commands import main\nsys.exit(main({args!r}))"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "WORKFLOWS_CPU_TRAINING_SLOTS": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=session,
    )


def test_a_fresh_dagster_home_gets_the_projects_dagster_yaml_and_a_users_file_is_kept(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write_instance_config(home)
    assert (home / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster_home" / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_config(home)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


@pytest.mark.slow  # trains a forecast period (one epoch each) twice over, the second time only what is missing
def test_ctrl_c_cancels_the_run_says_how_to_resume_and_the_resumed_run_trains_nothing_twice(data_dir):
    home = Path(os.environ["DAGSTER_HOME"])
    assert not (home / "dagster.yaml").exists()
    first = _cli(["demo", *QUICK])
    assert first.stdout is not None
    seen = []
    for line in first.stdout:  # wait until a period model has been trained and stored, then press Ctrl-C
        seen.append(line)
        if "_period_model" in line and line.strip().startswith("ok"):
            break
    else:
        pytest.fail("the demo ended before a period model was trained:\n" + "".join(seen) + first.stderr.read())
    trained_first = line.split()[1].removesuffix("_period_model")
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "terminate called" not in err, err[-3000:]
    assert "No dagster.yaml found" not in err + out and (home / "dagster.yaml").exists()
    assert "interrupted (Ctrl-C)" in err and "marked CANCELED in the Dagster instance" in err
    assert f"{trained_first}_period_model [2025-12-01|BTCUSDT]" in err.split("kept: ", 1)[1]
    assert f"resume with: workflows demo {' '.join(QUICK)}" in err

    instance = dg.DagsterInstance.get()
    (run,) = instance.get_runs(dg.RunsFilter(job_name="forecast_period"))
    assert run.status == dg.DagsterRunStatus.CANCELED
    # no pool slot is left claimed by the canceled run (the `gpu` pool admits one step: the resume would wait)
    storage = instance.event_log_storage
    held = [s for key in storage.get_concurrency_keys() for s in storage.get_concurrency_info(key).claimed_slots]
    assert not [s for s in held if s.run_id == run.run_id], held

    again = _cli(["demo", *QUICK])
    out, err = again.communicate(timeout=3000)
    assert again.returncode == 0, (out[-3000:], err[-3000:])
    resumed = instance.get_runs(dg.RunsFilter(job_name="forecast_period"), limit=1)[0]
    assert resumed.status == dg.DagsterRunStatus.SUCCESS
    event = instance.get_latest_materialization_event(dg.AssetKey(f"{trained_first}_period_model"))
    assert event is not None and event.run_id == resumed.run_id
    materialization = event.asset_materialization
    assert materialization is not None and materialization.metadata["trained"].value is False  # reused


def _group_gone(pgid: int, wait_s: float) -> bool:
    """True once no process of the group is left (within `wait_s`)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def _started_runs(instance) -> list:
    return instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))


@pytest.mark.slow
def test_ctrl_c_with_two_workers_cancels_the_months_models_and_the_attention_beside_them(data_dir):
    """With --workers 2 a month's attention analysis runs beside the next month's models: Ctrl-C in the terminal
    (SIGINT to the command's process group) while both run cancels both, leaves no run started and no process
    behind."""
    args = ["demo", "--days", "110", "--profile", "ci", "--periods", "2", "--min-train-days", "15"]
    proc = _cli([*args, "--max-epochs", "1", "--workers", "2"], session=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # the second month begins: the first month's attention analysis is in flight
        seen.append(line)
        if "(2/2)" in line:
            break
    else:
        pytest.fail("the demo ended before the second month:\n" + "".join(seen) + proc.stderr.read())
    instance = dg.DagsterInstance.get()
    deadline = time.monotonic() + 300
    while len(_started_runs(instance)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(_started_runs(instance)) == 2, "the first month's analysis never ran beside the second month's models"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted (Ctrl-C)" in err and "marked CANCELED in the Dagster instance" in err
    assert _group_gone(proc.pid, 120), "a process of the interrupted command is still running"
    monthly = [r for r in instance.get_runs() if "|" in r.tags.get("dagster/partition", "")]  # symbol x month
    months = sorted((r.tags["dagster/partition"][:7], r.job_name, r.status.value) for r in monthly)
    first, second = sorted({m for m, _, _ in months})
    # the first month's models, then its attention analysis (a run of its own) and the second month's models
    assert months == [
        (first, "forecast_period", "CANCELED"),
        (first, "forecast_period_parallel", "SUCCESS"),
        (second, "forecast_period_parallel", "CANCELED"),
    ], months
    assert not _started_runs(instance)
