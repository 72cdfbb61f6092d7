import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from workflows.definitions import defs
from workflows.ml.profiles import control_kinds, model_kinds
from workflows_tests.helpers import HANG_GUARD_S, PROJECT_ROOT


def test_asset_keys_and_checks():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "candles",
        "features",
        "reference_lstm_model",
        "attention_lstm_model",
        "transformer_model",
        "multitask_model",
        "ensemble_model",
        "volatility_model",
        "evaluation",
        "attention_tensors",
        "attention_analysis",
        "report",
        "production_model",
        "latest_forecast",
        "forecasts",
        "period_attention",
        *(f"{k}_period_model" for k in (*model_kinds(), *control_kinds())),
    }
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {
        ("candles", "candles_schema"),
        ("candles", "duplicate_hours"),
        ("candles", "ohlc_consistent"),
        ("candles", "missing_hour_ratio"),
        ("features", "features_schema"),
        ("features", "segments_contiguous"),
        ("production_model", "promotion_gate"),
    } <= checks
    features = graph.get(dg.AssetKey("features"))
    assert dg.AssetKey("candles") in features.parent_keys


def test_assets_are_partitioned_by_symbol_and_pooled():
    for key in ("candles", "features"):
        spec = defs.resolve_assets_def(key)
        assert isinstance(spec.partitions_def, dg.DynamicPartitionsDefinition)
        assert spec.partitions_def.name == "symbols"
        assert spec.code_versions_by_key[dg.AssetKey(key)] is not None


def test_dagster_definitions_validate(tmp_path):
    env = {"DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful" in done.stderr + done.stdout


@pytest.mark.slow
def test_dg_loads_the_defs_folder(tmp_path):
    """What `make validate` runs (`dg check defs`) and `dg list defs`, from [tool.dg] in pyproject.toml."""
    dg_cli = str(Path(sys.executable).with_name("dg"))
    env = {"DAGSTER_HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [dg_cli, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
        )

    checked = run("check", "defs", "--use-active-venv")
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = run("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    found = json.loads(listed.stdout)
    # 10 assets besides the models (candles .. latest_forecast, forecasts, period_attention), the model assets, the
    # period models (every kind and control); 7 in-process jobs (forecast_period_parallel: forecast_period on the
    # multiprocess executor) and 4 Celery twins; 3 schedules
    assets = 10 + len(model_kinds()) + len(model_kinds()) + len(control_kinds())
    assert (len(found["assets"]), len(found["jobs"]), len(found["schedules"]), len(found["sensors"])) == (
        assets,
        11,
        3,
        2,
    )
    assert sorted(r["name"] for r in found["resources"]) == ["io_manager", "warehouse"]


def test_jobs():
    names = {j.name for j in defs.resolve_all_job_defs()}
    assert names >= {"ingest", "forecast_period", "refresh_report", "analysis", "pipeline"}
    assert not names & {"train_models", "retrain"}  # no job trains outside the forecast periods
