import numpy as np
import pytest
from scipy import stats

from workflows.evaluation.forecasts import (
    evaluate_returns,
    evaluate_volatility,
    garch_variance_forecasts,
    minimum_detectable_skill,
    pesaran_timmermann,
    qlike,
)
from workflows.evaluation.stats import diebold_mariano, direction_binomial


def test_dm_with_hln_equals_the_paired_t_test_at_horizon_one():
    """For h = 1 the HLN-corrected DM statistic is exactly the one-sample t statistic
    of the loss differential (sqrt(n/(n-1)) from the variance, sqrt((n-1)/n) from HLN)."""
    rng = np.random.default_rng(0)
    e1, e2 = rng.normal(0, 1.0, 200), rng.normal(0, 1.1, 200)
    d = e1**2 - e2**2
    dm = diebold_mariano(e1, e2)
    t = stats.ttest_1samp(d, 0.0)
    assert dm.statistic == pytest.approx(t.statistic, rel=1e-10)
    assert dm.p_better == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="less").pvalue, rel=1e-10)
    assert dm.p_two_sided == pytest.approx(t.pvalue, rel=1e-10)


def test_dm_detects_a_clearly_better_forecast():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 1, 1000)
    signal = 0.5 * rng.normal(0, 1, 1000)
    target = signal + r
    assert diebold_mariano(signal - target, target).p_better < 1e-6  # forecast = the signal
    unrelated = 0.5 * rng.normal(0, 1, 1000)
    assert diebold_mariano(unrelated - target, target).p_better > 0.5  # worse than zero


def test_pesaran_timmermann_hand_computed():
    # n = 20, 10 outcomes positive, 11 predictions positive, 15 of 20 signs right:
    # p* = 0.5, var(P) = 0.25/20 = 0.0125,
    # var(P*) = 0.1^2 * 0.25/20 + 4 * 0.5 * 0.55 * 0.5 * 0.45 / 400 = 0.00074375,
    # stat = 0.25 / sqrt(0.01175625) = 2.3057
    actual = np.array([1] * 10 + [-1] * 10, float)
    predicted = actual.copy()
    predicted[[0, 1, 10, 11, 12]] *= -1  # 5 wrong: 2 positives called negative, 3 negatives called positive
    stat, p = pesaran_timmermann(predicted, actual)
    px = (predicted > 0).mean()
    assert px == pytest.approx(0.55)
    p_star = 0.5 * px + 0.5 * (1 - px)
    var_p = p_star * (1 - p_star) / 20
    var_star = (2 * px - 1) ** 2 * 0.25 / 20 + 0 + 4 * 0.5 * px * 0.5 * (1 - px) / 400
    assert stat == pytest.approx((0.75 - p_star) / np.sqrt(var_p - var_star), rel=1e-9)
    assert stat == pytest.approx(2.3057, abs=1e-4)
    assert p == pytest.approx(1 - stats.norm.cdf(stat))


def test_binomial_direction():
    hits, p = direction_binomial(np.array([True] * 60 + [False] * 40))
    assert hits == 0.6
    assert p == pytest.approx(stats.binomtest(60, 100, 0.5, alternative="greater").pvalue)


def test_evaluate_returns_skill_and_coverage():
    rng = np.random.default_rng(2)
    r = rng.normal(0, 0.01, 2000)
    forecast = np.zeros_like(r)
    ev = evaluate_returns(forecast, r, train_mean=0.0, predicted_var=np.full_like(r, 0.01**2))
    assert ev["skill_vs_zero"] == pytest.approx(0.0)
    assert ev["rmse_pct"] == pytest.approx(ev["rmse_zero_pct"])
    assert ev["coverage_80"] == pytest.approx(0.8, abs=0.03)
    assert ev["coverage_95"] == pytest.approx(0.95, abs=0.02)
    assert ev["min_detectable_skill"] == pytest.approx(minimum_detectable_skill(2000))
    # 300 test hours cannot tell a 3% skill from luck (the observation)
    assert minimum_detectable_skill(300) > 0.03


def test_qlike_and_volatility_baselines():
    assert qlike(np.array([2.0]), np.array([2.0])) == pytest.approx(0.0)
    assert qlike(np.array([1.0]), np.array([2.0])) == pytest.approx(2 - np.log(2) - 1)
    out = evaluate_volatility(np.array([1.0, 1.0]), np.array([1.0, 1.0]), {"half": np.array([0.5, 0.5])})
    assert out["model"]["qlike"] == pytest.approx(0.0) and out["half"]["qlike"] > 0


def test_garch_forecasts_track_volatility_clustering():
    from workflows.sources.synthetic import SyntheticSpec, generate_candles

    close = generate_candles(SyntheticSpec(days=400, strength=0.0, seed=5))["close"].to_numpy()
    returns = np.diff(np.log(close))
    train_end = 6000
    origins = np.arange(train_end, len(returns) - 24, 24)
    forecast = garch_variance_forecasts(returns, train_end, origins)
    realised = np.array([np.mean(returns[o + 1 : o + 25] ** 2) for o in origins])
    assert np.corrcoef(forecast, realised)[0, 1] > 0.2  # it follows the volatility clusters
    assert qlike(forecast, realised) < qlike(np.full_like(realised, returns[:train_end].var()), realised) + 0.05


def test_walk_forward_pools_folds_and_respects_time():
    from dataclasses import replace as dc_replace

    from workflows.evaluation.walk_forward import enough_history, walk_forward
    from workflows.features import compute_features
    from workflows.ml.profiles import recipe_for
    from workflows.sources.synthetic import SyntheticSpec, generate_candles

    feats = compute_features(generate_candles(SyntheticSpec(days=120, seed=3)))
    recipe = recipe_for("attention_lstm", "ci")
    recipe = dc_replace(recipe, train=dc_replace(recipe.train, epochs=1))
    assert enough_history(feats, folds=2, fold_days=7, max_train_days=60)
    assert not enough_history(feats, folds=6, fold_days=30, max_train_days=365)
    seen = []
    out = walk_forward(feats, recipe, folds=2, fold_days=7, max_train_days=60, val_days=7,
                       progress=lambda i, n, row: seen.append(i))
    assert seen == [1, 2]
    assert [f["test_hours"] for f in out["folds"]] == [7 * 24, 7 * 24]
    assert out["pooled"]["n"] == 2 * 7 * 24
    assert out["folds"][0]["test_start"] < out["folds"][1]["test_start"]
