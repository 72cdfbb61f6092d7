"""Ctrl-C is a normal event in `workflows demo` / `run`: the run is canceled in the instance, the terminal says
what was kept and how to resume, the process exits 130 without a traceback or an abort, and the resumed run
trains nothing already trained. A fresh DAGSTER_HOME gets the project's dagster.yaml from the CLI."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from workflows.cli.instance import write_instance_config
from workflows_tests.helpers import PROJECT_ROOT

QUICK = ["--days", "72", "--profile", "ci", "--periods", "1", "--min-train-days", "15", "--max-epochs", "1"]


def _cli(args: list[str]) -> subprocess.Popen:
    code = f"import sys\nfrom workflows.cli.commands import main\nsys.exit(main({args!r}))"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "WORKFLOWS_CPU_TRAINING_SLOTS": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
