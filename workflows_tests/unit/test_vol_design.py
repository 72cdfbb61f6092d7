"""The volatility recipe's design options: realised-variance inputs, the log-variance head, its twin."""

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
import torch

from workflows.evaluation.evidence import (
    ATTENTION_HELPS,
    VOLATILITY,
    VOLATILITY_MODEL,
    VOLATILITY_TWIN,
    ForecastSet,
    build_family,
)
from workflows.ml.models import ArchConfig, Heads, LastStateLSTM, QueryAttentionLSTM, TaskHeads
from workflows.ml.profiles import (
    VOLATILITY_DESIGN,
    VolatilityDesign,
    control_kinds,
    control_recipe,
    design_of,
    kind_profiles,
    period_recipe,
    profile_sizes,
    recipe_for,
    twins,
    volatility_recipe,
)
from workflows.ml.training import predict, qlike_loss
from workflows.ml.windows import RV_FLOOR, WindowSpec, build_windows

RV = ("log_rv_1h", "log_rv_24h", "log_rv_168h")


def _toy(returns: np.ndarray, gap_at: int) -> pl.DataFrame:
    """Hourly rows with a one-hour gap before row `gap_at` (a new segment starts there)."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ts = [start + timedelta(hours=i + (1 if i >= gap_at else 0)) for i in range(len(returns))]
    return pl.DataFrame(
        {
            "symbol": "TOY",
            "ts": ts,
            "segment": [0 if i < gap_at else 1 for i in range(len(returns))],
            "log_return": returns,
            "log_volume": np.linspace(1.0, 2.0, len(returns)),
        }
    )


def _unscaled_inputs(data, split) -> np.ndarray:
    return split.x * np.asarray(data.scaler.std, dtype=np.float32) + np.asarray(data.scaler.mean, dtype=np.float32)


def test_rv_summaries_are_the_log_mean_square_of_past_returns_within_the_segment():
    rng = np.random.default_rng(0)
    n, gap = 700, 400
    returns = rng.normal(0, 0.01, n) * np.where(np.arange(n) % 50 < 10, 3.0, 1.0)
    feats = _toy(returns, gap)
    spec = WindowSpec(features=("log_return", *RV))
    data = build_windows(feats, spec)
    ts = feats["ts"].to_numpy()
    segment = feats["segment"].to_numpy()
    checked = 0
    for split in (data.train, data.val, data.test):
        x = _unscaled_inputs(data, split)
        for i in range(0, len(split), 37):
            t = int(np.searchsorted(ts, split.end_ts[i]))  # the window's last row: hour t
            for j, hours in enumerate((1, 24, 168), start=1):
                lo = max(t - hours + 1, 0)
                lo = max(lo, int(np.argmax(segment == segment[t])))  # never before the segment's first row
                expected = np.log(np.mean(returns[lo : t + 1] ** 2) + RV_FLOOR)
                assert x[i, -1, j] == pytest.approx(expected, rel=1e-4, abs=1e-4)
            checked += 1
    assert checked > 10
    # the first rows after the gap see only their own segment: the 24 h summary of row `gap` is its own square
    row = None
    for split in (data.train, data.val, data.test):
        hit = np.flatnonzero(split.end_ts == ts[gap + 47])
        if len(hit):
            row = _unscaled_inputs(data, split)[hit[0]]
    assert row is not None
    assert row[0, 2] == pytest.approx(np.log(returns[gap] ** 2 + RV_FLOOR), rel=1e-4, abs=1e-4)


def test_rv_summaries_never_look_ahead():
    """Changing every return after hour t leaves the inputs of the window ending at t unchanged."""
    rng = np.random.default_rng(1)
    n = 1200
    returns = rng.normal(0, 0.01, n)
    spec = WindowSpec(features=("log_return", *RV))
    a = build_windows(_toy(returns, n), spec)
    t = 500
    changed = returns.copy()
    changed[t + 1 :] *= 5.0
    b = build_windows(_toy(changed, n), spec)
    ts = _toy(returns, n)["ts"].to_numpy()
    ia, ib = (np.flatnonzero(d.train.end_ts == ts[t])[0] for d in (a, b))
    xa, xb = _unscaled_inputs(a, a.train)[ia], _unscaled_inputs(b, b.train)[ib]
    np.testing.assert_allclose(xa, xb, rtol=1e-4, atol=1e-4)
    # the summaries do move with the hours they cover (the test would catch a constant input)
    jb = np.flatnonzero(b.train.end_ts == ts[t + 30])[0]
    ja = np.flatnonzero(a.train.end_ts == ts[t + 30])[0]
    assert abs(_unscaled_inputs(b, b.train)[jb, -1, 2] - _unscaled_inputs(a, a.train)[ja, -1, 2]) > 1.0


def test_the_volatility_twin_is_registered_trained_per_period_and_has_no_attention():
    assert twins()[VOLATILITY_MODEL] == VOLATILITY_TWIN == "no_attention_volatility"
    assert VOLATILITY_TWIN in control_kinds()  # the period assets train every control kind
    design, twin = recipe_for(VOLATILITY_MODEL, "ci"), control_recipe(VOLATILITY_TWIN, "ci")
    assert twin.arch == "last_state_lstm" and design.arch == "query_attention_lstm"
    assert (twin.features, twin.heads, twin.train, twin.window) == (
        design.features,
        design.heads,
        design.train,
        design.window,
    )
    assert twin.kwargs["hidden"] == design.kwargs["hidden"]
    model = ArchConfig(twin.arch, len(twin.features), dict(twin.kwargs), dict(twin.heads)).build()
    assert isinstance(model, LastStateLSTM)
    names = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert names == {"lstm", "heads"}  # no query, key, value or lag embedding
    out = predict(model, np.random.default_rng(0).normal(size=(5, 48, len(twin.features))).astype(np.float32))
    np.testing.assert_allclose(out["attention"], 1 / 48, rtol=1e-6)  # uniform: reported for shape only
    assert "vol" in out and "vol_next" in out


def test_design_options_reach_the_recipe_and_the_model():
    sizes = profile_sizes("ci")
    design = VolatilityDesign(log_variance=True, rv_summaries=True, hour_of_day=True, window=96, scales=(24, 96))
    recipe = volatility_recipe(sizes, design)
    assert recipe.features == ("log_return", "abs_log_return", "log_volume", *RV, "hour_sin", "hour_cos")
    assert recipe.window_spec.window == 96 and recipe.window_spec.embargo == 96 + 24
    assert recipe.heads["log_variance"] is True
    model = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads)).build()
    assert isinstance(model, QueryAttentionLSTM) and model.window == 96 and model.scales == (24, 96)
    out = model(torch.zeros(2, 96, len(recipe.features)))
    assert out.vol is not None and (out.vol > 0).all() and out.scale_attention.shape == (2, 2, 96)
    assert recipe.fingerprint() != volatility_recipe(sizes).fingerprint()
    with pytest.raises(ValueError, match="reach past"):
        volatility_recipe(sizes, VolatilityDesign(window=48, scales=(24, 96)))
    # the registered recipe is the default design's
    assert recipe_for(VOLATILITY_MODEL, "ci") == volatility_recipe(sizes, VOLATILITY_DESIGN)


@pytest.mark.parametrize("variances", [(0.25, 4.0), (9.0, 0.5)])
def test_a_log_variance_head_trained_by_qlike_recovers_the_variance_scale(variances):
    """Returns with variance v0 when the input is 0 and v1 when it is 1: the head's exp(s) recovers both."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    n = 5_000
    z = (torch.rand(n, generator=gen) < 0.5).float()
    sd = torch.where(z > 0, variances[1] ** 0.5, variances[0] ** 0.5)
    r = torch.randn(n, generator=gen) * sd
    head = TaskHeads(1, Heads(volatility_next=True, log_variance=True))
    x = z[:, None]
    # QLIKE in the log-variance s is convex (r^2 e^-s + s): its minimiser per group is the group's mean square
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = qlike_loss(head(x)["vol_next"], r.abs())
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        fitted = head(torch.tensor([[0.0], [1.0]]))["vol_next"].square().numpy()
    sample = [float((r[z == k] ** 2).mean()) for k in (0, 1)]
    np.testing.assert_allclose(fitted, sample, rtol=0.01)
    # far from where it started (variance 1): the scale was learnt, not inherited
    assert abs(np.log(fitted).max()) > 0.6


def _fs(n: int, seed: int) -> tuple[ForecastSet, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_var = np.exp(np.convolve(rng.normal(0, 0.3, n + 50), np.ones(50) / 7, "valid")[:n]) * 1e-4
    actual = rng.normal(0, np.sqrt(true_var))
    fs = ForecastSet(
        end_ts=np.arange(n).astype("datetime64[h]"),
        fold=np.ones(n, dtype=int),
        actual=actual,
        train_mean=np.zeros(n),
        realised_var=true_var * rng.chisquare(24, n) / 24,
    )
    return fs, true_var


@pytest.mark.parametrize("attention_better", [True, False])
def test_the_volatility_model_meets_its_twin_by_qlike_in_the_attention_family(attention_better):
    fs, true_var = _fs(4000, 3)
    good = true_var
    bad = true_var * np.exp(np.random.default_rng(4).normal(0, 0.6, len(true_var)))
    model, twin = (good, bad) if attention_better else (bad, good)
    fs.vol_var = {VOLATILITY_MODEL: model, VOLATILITY_TWIN: twin, "log_har": true_var * 1.3}
    fs.next_var = {VOLATILITY_MODEL: model, VOLATILITY_TWIN: twin, "log_har": true_var * 1.3}
    family = build_family(fs)
    vs_twin = [c for c in family if c.baseline == VOLATILITY_TWIN]
    assert sorted(c.horizon for c in vs_twin) == [1, 24]
    assert all(c.family == ATTENTION_HELPS and c.loss == "QLIKE" and c.model == VOLATILITY_MODEL for c in vs_twin)
    assert all(c.survives == attention_better for c in vs_twin)
    # the twin is no volatility-family baseline and gives no return forecast
    assert not [c for c in family if c.family == VOLATILITY and VOLATILITY_TWIN in (c.model, c.baseline)]
    assert [c for c in family if c.family == VOLATILITY and c.baseline == "log_har"]
    assert not [c for c in family if c.model == VOLATILITY_TWIN]


def test_a_period_recipe_follows_its_design_caps_epochs_and_names_the_device():
    """`period_recipe`: what a `<kind>_period_model` trains with (the asset passes the profile, --max-epochs and
    the placed device); a twin trains with its design's profile (`design_of`)."""
    full = recipe_for("multitask", "ci")
    assert period_recipe("multitask", "ci") == full
    capped = period_recipe("multitask", "ci", max_epochs=1, device="cpu")
    assert capped.train.epochs == 1 < full.train.epochs and capped.train.device == "cpu"
    assert period_recipe("multitask", "ci", max_epochs=10_000).train.epochs == full.train.epochs  # a cap, not a floor
    assert period_recipe(VOLATILITY_TWIN, "ci") == control_recipe(VOLATILITY_TWIN, "ci")
    assert design_of(VOLATILITY_TWIN) == VOLATILITY_MODEL and design_of("multitask") == "multitask"
    profiles = kind_profiles("ci", {VOLATILITY_MODEL: "cpu"})
    assert profiles[VOLATILITY_TWIN] == profiles[VOLATILITY_MODEL] == "cpu" and profiles["multitask"] == "ci"
