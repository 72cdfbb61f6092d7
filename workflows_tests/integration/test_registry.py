"""One registry of model kinds: adding a kind is one `register(ModelKind(...))`, and its period model
asset, its forecast-log rows, its report row and (with a twin) its control follow."""

import json
import subprocess
import sys

import pytest

from workflows.ml.profiles import (
    ModelKind,
    Recipe,
    control_kinds,
    model_kind,
    model_kinds,
    recipe_for,
    register,
    served_kind,
    twins,
    variance_forecasters,
)
from workflows_tests.helpers import PROJECT_ROOT

# Run in a fresh interpreter: the kind is registered before any other module of the package is imported,
# exactly as a new entry in ml/profiles.py would be.
_WITH_A_NEW_KIND = """
import json
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from workflows.ml.profiles import ModelKind, Recipe, register

register(ModelKind(
    "dummy", "A kind added in a test: a small last-state LSTM.",
    lambda s: Recipe("dummy", "last_state_lstm", {"hidden": 8}, train=replace(s.base, epochs=1)),
))

import dagster as dg
import duckdb

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.definitions import defs
from workflows.evaluation.forecast_log import pooled_evaluation, update_period
from workflows.ml.period_models import train_period_model
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.profiles import recipe_for
from workflows.reporting.report import MODELS, forecast_table

period_model = defs.resolve_assets_def("dummy_period_model")
forecasts = defs.resolve_assets_def("forecasts")
served = defs.resolve_assets_def("dummy_model")
evaluation = defs.resolve_assets_def("evaluation")
end = datetime(2026, 1, 2, tzinfo=timezone.utc)
feats = compute_features(generate_candles(SyntheticSpec(days=70, seed=3, end=end)))
period, cfg = ForecastPeriod.from_key("2025-12-01"), PeriodConfig(train_days=25, min_train_days=20, val_days=5)
with tempfile.TemporaryDirectory() as tmp:
    db = str(Path(tmp) / "warehouse.duckdb")
    model = train_period_model(
        lambda: duckdb.connect(db), feats, "BTCUSDT", "dummy", recipe_for("dummy", "ci"), period, cfg,
        Path(tmp) / "periods", "1", "ci",
    )
    with duckdb.connect(db) as con:
        update = update_period(con, feats, "BTCUSDT", period, {"dummy": model.load()}, cfg)
        logged = con.execute(
            "SELECT count(*) FROM forecast_log WHERE name = 'dummy' AND period = ?", [period.key]
        ).fetchone()[0]
        ev = pooled_evaluation(con, "BTCUSDT", None, "ci")
rows = [line for line in forecast_table(ev) if line.startswith("| dummy ")]
print(json.dumps({
    "description": period_model.descriptions_by_key[period_model.key],
    "served_description": served.descriptions_by_key[served.key],
    "forecasts_reads_it": dg.AssetKey("dummy_period_model") in forecasts.dependency_keys,
    "evaluation_reads_it": dg.AssetKey("dummy_model") in evaluation.dependency_keys,
    "trained": model.trained,
    "hours": update.test_hours,
    "logged_rows": logged,
    "returns": sorted(ev.returns),
    "family": [(c.kind, c.model, c.baseline) for c in ev.family if c.model == "dummy"],
    "report_model": "dummy" in MODELS,
    "rows": rows,
}))
"""


def test_a_new_kind_gets_a_period_model_asset_forecast_log_rows_and_a_report_row():
    """The registry's one entry is enough: Dagster gets `dummy_period_model` (read by `forecasts`) and `dummy_model`
    (read by the evaluation), the period model trains once on hours before December 2025 through the code the
    asset calls, the forecast log gets one row per hour of the month for it, and the pooled evaluation puts it in
    the family and the report's forecast table."""
    done = subprocess.run(
        [sys.executable, "-c", _WITH_A_NEW_KIND], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["description"].startswith("The dummy model of one symbol and month")
    assert got["served_description"].startswith("A kind added in a test: a small last-state LSTM.")
    assert got["forecasts_reads_it"] and got["evaluation_reads_it"]
    assert got["trained"] and got["hours"] == 31 * 24 and got["logged_rows"] == got["hours"]
    assert "dummy" in got["returns"] and got["report_model"]
    assert ["vs zero", "dummy", "zero"] in got["family"]
    assert len(got["rows"]) == 1, got["rows"]


def test_the_built_in_registry():
    assert model_kinds() == ("reference_lstm", "attention_lstm", "transformer", "multitask", "ensemble", "volatility")
    assert served_kind() == "multitask"
    assert twins() == {
        "reference_lstm": "no_attention_reference",
        "attention_lstm": "no_attention_lstm",
        "volatility": "no_attention_volatility",
    }
    assert control_kinds() == ("no_attention_reference", "no_attention_lstm", "no_attention_volatility")
    assert variance_forecasters() == ("multitask", "volatility")
    assert recipe_for("ensemble", "ci").members == 5
    assert model_kind("volatility").role == "volatility"


def test_registry_refuses_a_second_serving_kind_and_an_unknown_role():
    recipe = lambda s: Recipe("x", "last_state_lstm", {"hidden": 8}, train=s.base)  # noqa: E731
    with pytest.raises(ValueError, match="already serves"):
        register(ModelKind("x", "another server", recipe, serves=True))
    with pytest.raises(ValueError, match="role must be"):
        register(ModelKind("x", "a kind with no role", recipe, role="direction"))
    assert "x" not in model_kinds()
    with pytest.raises(ValueError, match="unknown model kind 'nope'"):
        recipe_for("nope", "ci")
