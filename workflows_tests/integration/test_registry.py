"""One registry of model kinds: adding a kind is one `register(ModelKind(...))`, and its asset, its
walk-forward forecasts, its report row and (with a twin) its control follow."""

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
from dataclasses import replace

from workflows.ml.profiles import ModelKind, Recipe, register

register(ModelKind(
    "dummy", "A kind added in a test: a small last-state LSTM.",
    lambda s: Recipe("dummy", "last_state_lstm", {"hidden": 8}, train=replace(s.base, epochs=1)),
))

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.definitions import defs
from workflows.evaluation.walk_forward import WalkForwardConfig, forecaster_recipes, walk_forward
from workflows.reporting.report import MODELS, forecast_table

asset = defs.resolve_assets_def("dummy_model")
recipes = forecaster_recipes("ci")
feats = compute_features(generate_candles(SyntheticSpec(days=80, seed=3)))
cfg = WalkForwardConfig(folds=1, fold_days=7, train_days=40, min_train_days=30, val_days=7)
ev = walk_forward(feats, "ci", cfg, recipes={"dummy": recipes["dummy"]})
rows = [line for line in forecast_table(ev) if line.startswith("| dummy ")]
print(json.dumps({
    "description": asset.descriptions_by_key[asset.key],
    "evaluated": "dummy" in recipes,
    "returns": sorted(ev.returns),
    "family": [(c.kind, c.model, c.baseline) for c in ev.family if c.model == "dummy"],
    "report_model": "dummy" in MODELS,
    "rows": rows,
}))
"""


def test_a_new_kind_gets_an_asset_an_evaluation_entry_and_a_report_row():
    done = subprocess.run(
        [sys.executable, "-c", _WITH_A_NEW_KIND], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["description"] == "A kind added in a test: a small last-state LSTM."
    assert got["evaluated"] and got["report_model"]
    assert "dummy" in got["returns"]
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
