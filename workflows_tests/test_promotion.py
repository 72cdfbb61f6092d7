from dataclasses import replace

import numpy as np
import pytest
import torch

from workflows.features import compute_features
from workflows.ml.checkpoints import load_checkpoint, save_checkpoint
from workflows.ml.models import ArchConfig
from workflows.ml.promotion import forecast_next_hour, gate, load_current, read_pointer, write_pointer
from workflows.ml.profiles import recipe_for
from workflows.ml.training import train
from workflows.ml.windows import build_windows
from workflows.sources.synthetic import SyntheticSpec, generate_candles


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A learnable series (lag 1, strength 0.5), a trained multitask model and a sabotaged one."""
    folder = tmp_path_factory.mktemp("ckpt")
    feats = compute_features(generate_candles(SyntheticSpec(days=60, lag=1, strength=0.5, seed=2)))
    recipe = recipe_for("multitask", "ci")
    data = build_windows(feats, recipe.window_spec, data_version="v")
    arch = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads))
    torch.manual_seed(0)
    good = train(arch.build(), data, replace(recipe.train, epochs=8)).model
    bad = arch.build()
    with torch.no_grad():
        bad.heads.ret.bias.fill_(3.0)  # always forecasts a 3-sigma move: far worse than zero
    paths = {}
    for name, model in (("good", good), ("bad", bad)):
        paths[name] = save_checkpoint(folder / f"{name}.pt", model, arch, data.scaler, data.spec_dict(), "v", {},
                                      recipe.train.to_dict())
    return feats, data, {k: load_checkpoint(p) for k, (p, _) in paths.items()}, paths, folder


def test_gate_refuses_a_model_worse_than_zero(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["bad"], None, feats, data.test.end_ts)
    assert not decision.promoted and decision.reason == "worse than the zero-return forecast"
    assert decision.mse_candidate > decision.mse_zero


def test_gate_accepts_a_better_model_and_refuses_a_worse_successor(setup):
    feats, data, ckpts, _, _ = setup
    first = gate(ckpts["good"], None, feats, data.test.end_ts)
    assert first.promoted and first.mse_candidate < first.mse_zero
    assert first.hours == len(data.test)
    successor = gate(ckpts["bad"], ckpts["good"], feats, data.test.end_ts)
    assert not successor.promoted
    same = gate(ckpts["good"], ckpts["good"], feats, data.test.end_ts)
    assert same.promoted and same.mse_current == pytest.approx(same.mse_candidate)


def test_pointer_and_forecast(setup):
    feats, data, ckpts, paths, folder = setup
    assert load_current(folder) is None
    zero = forecast_next_hour(None, feats)
    assert zero["return_pct"] == 0.0 and "zero-return" in zero["model"]
    decision = gate(ckpts["good"], None, feats, data.test.end_ts)
    path, sha = paths["good"]
    write_pointer(folder, str(path), sha, decision)
    assert read_pointer(folder)["gate"]["promoted"] is True
    current = load_current(folder)
    forecast = forecast_next_hour(current, feats)
    lo, hi = forecast["interval_80_pct"]
    assert lo < forecast["return_pct"] < hi
    assert forecast["interval_95_pct"][0] < lo
    assert sum(forecast["direction_probabilities"].values()) == pytest.approx(1.0)
    assert forecast["forecast_hour"] > forecast["as_of_candle"]
    assert np.isfinite(forecast["return_pct"])
