"""The pipeline learns when there is something to learn, and only then.

A year of synthetic hours with a planted lag-24 dependency (strength 0.25): the
learning attention LSTM beats the zero-return forecast (Diebold-Mariano p < 0.05)
and its mean attention peaks within one hour of lag 24; the reference design
stays near-uniform and does not. On pure noise (strength 0) the learning model
does not beat zero significantly. Same recipes as the `cpu` profile.
"""

import numpy as np
import pytest
import torch

from workflows.evaluation.stats import diebold_mariano
from workflows.features import compute_features
from workflows.ml.models import ArchConfig
from workflows.ml.profiles import recipe_for
from workflows.ml.training import predict, train
from workflows.ml.windows import build_windows
from workflows.sources.synthetic import SyntheticSpec, generate_candles

pytestmark = pytest.mark.slow


def fit_and_score(kind: str, strength: float, seed: int = 1):
    feats = compute_features(generate_candles(SyntheticSpec(days=365, strength=strength, lag=24, seed=seed)))
    recipe = recipe_for(kind, "cpu")
    data = build_windows(feats, recipe.window_spec)
    torch.manual_seed(0)
    model = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs)).build()
    result = train(model, data, recipe.train)
    out = predict(result.model, data.test.x)
    dm = diebold_mariano(out["ret"] - data.test.ret, data.test.ret)  # model vs the zero forecast
    mean_attention = out["attention"].mean(0)
    peak_lag = data.spec.window - int(mean_attention.argmax())  # position p is lag W - p
    return dm, peak_lag, mean_attention


def test_learning_model_finds_the_planted_lag():
    dm, peak_lag, attention = fit_and_score("attention_lstm", 0.25)
    assert dm.p_better < 0.05, dm
    assert abs(peak_lag - 24) <= 1, peak_lag
    assert attention.max() > 5 / 48  # far from uniform


def test_reference_design_does_not():
    dm, peak_lag, attention = fit_and_score("reference_lstm", 0.25)
    assert not (dm.p_better < 0.05 and abs(peak_lag - 24) <= 1)
    assert attention.max() < 1.2 / 48  # within 20% of uniform


def test_no_significant_skill_on_noise():
    dm, _, attention = fit_and_score("attention_lstm", 0.0)
    assert dm.p_better >= 0.05, dm
    assert np.isfinite(attention).all()
