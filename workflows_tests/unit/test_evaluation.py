import numpy as np
import pytest
from scipy import stats

from workflows.evaluation.baselines import RidgeAR, ewma_variance, rolling_variance
from workflows.evaluation.evidence import FoldSpan, ForecastSet, evaluate_forecasts, return_metrics
from workflows.stats.losses import minimum_detectable_skill, pesaran_timmermann, qlike
from workflows.stats.significance import diebold_mariano, direction_binomial, dm_test, holm, long_run_variance


def test_dm_with_hln_equals_the_paired_t_test_at_horizon_one():
    """For h = 1 the HLN-corrected DM statistic is exactly the one-sample t statistic
    of the loss differential (sqrt(n/(n-1)) from the variance, sqrt((n-1)/n) from HLN)."""
    rng = np.random.default_rng(0)
    e1, e2 = rng.normal(0, 1.0, 200), rng.normal(0, 1.1, 200)
    d = e1**2 - e2**2
    dm = diebold_mariano(e1, e2)
    t_statistic, t_p = stats.ttest_1samp(d, 0.0)
    assert dm.statistic == pytest.approx(t_statistic, rel=1e-10)
    assert dm.p_better == pytest.approx(stats.ttest_1samp(d, 0.0, alternative="less")[1], rel=1e-10)
    assert dm.p_two_sided == pytest.approx(t_p, rel=1e-10)


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


def test_return_metrics_skill_interval_and_coverage():
    rng = np.random.default_rng(2)
    r = rng.normal(0, 0.01, 2000)
    m = return_metrics(np.zeros_like(r), r, train_mean=0.0, predicted_var=np.full_like(r, 0.01**2))
    assert m.skill_vs_zero == pytest.approx(0.0)
    assert m.skill_vs_zero_ci == (pytest.approx(0.0), pytest.approx(0.0))
    assert m.rmse_pct == pytest.approx(m.rmse_zero_pct)
    assert m.coverage_80 == pytest.approx(0.8, abs=0.03)
    assert m.coverage_95 == pytest.approx(0.95, abs=0.02)
    assert m.min_detectable_skill == pytest.approx(minimum_detectable_skill(2000))
    good = return_metrics(0.3 * r + rng.normal(0, 0.001, len(r)), r, 0.0)
    lo, hi = good.skill_vs_zero_ci
    assert lo < good.skill_vs_zero < hi and lo > 0  # 1 - (0.7^2 + 0.01) ~ 0.5, clearly above zero
    assert minimum_detectable_skill(300) > 0.03  # 300 test hours cannot tell a 3% skill from luck


def test_qlike_known_values():
    assert qlike(np.array([2.0]), np.array([2.0])) == pytest.approx(0.0)
    assert qlike(np.array([1.0]), np.array([2.0])) == pytest.approx(2 - np.log(2) - 1)


def test_holm_against_hand_computation_and_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert np.isnan(holm([0.01, np.nan])[1]) and holm([0.01, np.nan])[0] == pytest.approx(0.01)
    # five tests each at 0.02: alone significant, none survives
    assert (holm([0.02] * 5) >= 0.05).all()


def test_long_run_variance_falls_back_to_bartlett_when_rectangular_is_negative():
    d = np.tile([1.0, -1.0], 50)  # strongly negative lag-1 autocovariance
    rect = np.var(d) + 2 * np.sum([np.mean((d[k:] - d.mean()) * (d[:-k] - d.mean())) for k in range(1, 2)])
    assert rect <= 0
    assert long_run_variance(d, horizon=2) > 0
    assert long_run_variance(d, horizon=1) == pytest.approx(np.var(d))


def test_dm_is_stable_when_negative_autocovariances_cancel_the_variance():
    """d_t = e_t - e_(t-1): gamma_1 = -gamma_0 / 2, so at horizon 2 the rectangular long-run variance is
    zero up to sampling noise and rounding, and its sign and size flip with a change in the last digits.
    The statistic must not: a perturbation of 1e-12 moves it by a rounding error, and it stays of the
    order the Bartlett estimate gives (|t| of a few at most), where the rectangular one alone gave millions."""
    rng = np.random.default_rng(39)
    e = rng.normal(0, 1, 501)
    d = np.diff(e) + 0.01  # a small true mean, so the test has something to (not) find
    c = d - d.mean()
    rect = (c @ c + 2 * c[1:] @ c[:-1]) / len(d)  # gamma_0 + 2 gamma_1
    assert 0 < rect < 0.001 * np.var(d)  # the dangerous case: positive, so no fallback, but near zero
    # (used alone, it gives a DM statistic of 8.7 here)
    base = dm_test(d, horizon=2)
    for scale in (1 + 1e-12, 1 - 1e-12):
        assert dm_test(d * scale, horizon=2).statistic == pytest.approx(base.statistic, rel=1e-6)
    assert abs(base.statistic) < 5 and 0.0 < base.p_better < 1.0
    # and where nothing cancels, the rectangular estimate is the one used (it is the larger)
    ma = np.convolve(rng.normal(0, 1, 524), np.ones(24) / 24, mode="valid")
    centred = ma - ma.mean()
    gammas = [centred[k:] @ centred[: len(ma) - k] / len(ma) for k in range(24)]
    assert long_run_variance(ma, horizon=24) == pytest.approx(gammas[0] + 2 * sum(gammas[1:]))


def test_dm_at_overlapping_horizon_is_wider_than_ignoring_the_overlap():
    """24-hour targets computed every hour overlap by 23 hours: a differential built from them is
    strongly autocorrelated, and a horizon-1 test would be far too confident."""
    rng = np.random.default_rng(3)
    shocks = rng.normal(0.05, 1.0, 2000 + 23)
    d = np.convolve(shocks, np.ones(24) / 24, mode="valid")  # moving average: overlap like the 24 h targets
    naive, proper = dm_test(-d, horizon=1), dm_test(-d, horizon=24)
    assert abs(proper.statistic) < abs(naive.statistic) / 2
    assert proper.p_better > naive.p_better


def test_equal_volatility_forecasts_read_not_shown_to_differ():
    from workflows.reporting.volatility_text import comparison_sentence

    fs = _forecast_set(np.random.default_rng(4), n=600)
    fs.vol_var = {"multitask": fs.realised_var * 0 + 1e-4, "constant": fs.realised_var * 0 + 1e-4}
    ev = evaluate_forecasts(fs, "test", _fold_info(fs), {})
    c = ev.comparison("volatility", "multitask", "constant")
    assert c.dm.p_better == pytest.approx(0.5) and not c.survives
    text = comparison_sentence(ev, "multitask", 24) or ""
    assert "is not shown to differ from constant training variance (skill +0.00%, the hours resolve" in text
    assert "no difference" not in text


def test_better_volatility_forecast_survives_and_is_named():
    from workflows.reporting.volatility_text import comparison_sentence

    rng = np.random.default_rng(5)
    n = 3000
    true_var = np.exp(np.convolve(rng.normal(0, 0.3, n + 199), np.ones(200) / 14, mode="valid")) * 1e-4
    realised = true_var * rng.chisquare(24, n) / 24  # noisy realised variance around the truth
    fs = _forecast_set(rng, n=n)
    fs.realised_var = realised
    fs.vol_var = {"multitask": true_var, "constant": np.full(n, true_var.mean())}
    ev = evaluate_forecasts(fs, "test", _fold_info(fs), {})
    assert ev.comparison("volatility", "multitask", "constant").survives
    assert "beats constant training variance" in (comparison_sentence(ev, "multitask", 24) or "")


def _forecast_set(rng, n: int) -> ForecastSet:
    r = rng.standard_t(5, n) * 0.006
    ts = np.arange(n).astype("datetime64[h]").astype("datetime64[us]")
    return ForecastSet(
        end_ts=ts, fold=np.ones(n, int), actual=r, train_mean=np.zeros(n), realised_var=np.full(n, 0.006**2)
    )


def _fold_info(fs: ForecastSet) -> list[FoldSpan]:
    return [FoldSpan(fold=1, test_start="a", test_end="b", train_windows=10, train_start="x", train_end="y")]


def test_family_is_corrected_and_only_survivors_make_the_bottom_line():
    """One informative forecaster among many noise ones: it survives Holm; a noise forecaster whose raw
    p happens to fall below 5% does not, and the report says so."""
    from workflows.reporting.report import bottom_line, forecast_sentence

    rng = np.random.default_rng(6)
    n = 4000
    signal = rng.normal(0, 0.003, n)
    fs = _forecast_set(rng, n)
    fs.actual = signal + rng.normal(0, 0.006, n)
    fs.returns["attention_lstm"] = signal * 0.8
    for i in range(12):
        fs.returns[f"noise_{i}"] = rng.normal(0, 0.0003, n)
    # a lucky one: tiny real correlation with the outcome, raw p < 0.05 alone
    jitter = rng.normal(0, 0.0006, n)
    lucky = next(
        f
        for f in (w * fs.actual + jitter for w in np.linspace(0, 0.2, 401))
        if 0.004 < dm_test((f - fs.actual) ** 2 - fs.actual**2).p_better < 0.02
    )
    fs.returns["transformer"] = lucky
    ev = evaluate_forecasts(fs, "test", _fold_info(fs), {})
    assert [c.model for c in ev.survivors()] == ["attention_lstm"]
    lucky_c = ev.comparison("vs zero", "transformer")
    assert lucky_c.dm.p_better < 0.05 and lucky_c.p_holm >= 0.05
    assert "does not survive the correction" in forecast_sentence("transformer", ev)
    line = bottom_line(ev)
    assert "attention_lstm beats the zero-return forecast" in line and "transformer" not in line
    assert "Holm-corrected within the return skill family of 14 tests" in line


def test_attention_vs_twin_is_in_the_family():
    rng = np.random.default_rng(7)
    n = 3000
    signal = rng.normal(0, 0.003, n)
    fs = _forecast_set(rng, n)
    fs.actual = signal + rng.normal(0, 0.006, n)
    fs.returns = {
        "attention_lstm": signal,
        "no_attention_lstm": rng.normal(0, 0.0003, n),
        "reference_lstm": rng.normal(0, 0.003, n),  # noise ten times the twin's: truly worse
        "no_attention_reference": rng.normal(0, 0.0003, n),
    }
    ev = evaluate_forecasts(fs, "test", _fold_info(fs), {})
    assert ev.comparison("attention vs twin", "attention_lstm").survives  # positive case
    assert not ev.comparison("attention vs twin", "reference_lstm").survives  # negative case
    assert len(ev.family) == 4 + 2
    # its own family: two tests, named in the verdict
    assert [c.family for c in ev.members("does attention help")] == ["does attention help"] * 2
    assert ev.family_words("does attention help") == "Holm-corrected within the does attention help family of 2 tests"


def test_ridge_ar_finds_a_planted_linear_lag_and_nothing_in_noise():
    rng = np.random.default_rng(8)
    n, lag = 6000, 17
    r = rng.normal(0, 1, n + 48)
    for t in range(lag, len(r)):
        r[t] += 0.3 * r[t - lag]
    x = np.lib.stride_tricks.sliding_window_view(r[:-1], 48)  # windows ending at t; target r[t+1]
    y = r[48:]
    cut, val = 4000, 5000
    model = RidgeAR.fit(x[:cut], y[:cut], x[cut:val], y[cut:val])
    assert 48 - int(np.argmax(np.abs(model.coef))) == lag  # position 48 - lag holds "lag hours ago"
    assert dm_test((model.predict(x[val:]) - y[val:]) ** 2 - y[val:] ** 2).p_better < 0.01
    noise = rng.normal(0, 1, n + 48)
    xn, yn = np.lib.stride_tricks.sliding_window_view(noise[:-1], 48), noise[48:]
    null = RidgeAR.fit(xn[:cut], yn[:cut], xn[cut:val], yn[cut:val])
    assert dm_test((null.predict(xn[val:]) - yn[val:]) ** 2 - yn[val:] ** 2).p_better > 0.05


def test_ewma_and_rolling_variance_against_direct_loops():
    rng = np.random.default_rng(9)
    r = rng.normal(0, 0.01, 500)
    origins = np.array([100, 250, 499])
    s2 = np.mean(r[:100] ** 2)
    direct = []
    for t in range(500):
        s2 = 0.94 * s2 + 0.06 * r[t] ** 2  # after seeing r[t]: the forecast for t+1
        direct.append(s2)
    assert ewma_variance(r, origins, train_end=100) == pytest.approx(np.array(direct)[origins], rel=1e-10)
    assert rolling_variance(r, origins) == pytest.approx([np.mean(r[o - 23 : o + 1] ** 2) for o in origins])


def test_return_metrics_calibrates_intervals_far_too_narrow():
    """Like the ensemble's member spread: a predictive sd a tenth of the true one, and a volatility
    that doubles halfway. The Gaussian interval misses most hours; the conformal one covers."""
    rng = np.random.default_rng(8)
    sd = np.where(np.arange(3000) < 1500, 0.01, 0.02)
    r = rng.normal(0, sd)
    m = return_metrics(np.zeros_like(r), r, train_mean=0.0, predicted_var=(0.1 * sd) ** 2)
    assert set(m.calibration) == {80, 95}
    for pct, c in m.calibration.items():
        assert c.calibration_hours == 200 and c.after.n == 2800  # the served intervals' fixed warm-up, not a share
        assert c.before.observed < 0.3 and c.before.kupiec_p < 1e-6
        assert c.after.observed == pytest.approx(pct / 100, abs=0.02)
        assert c.interval_score_after < c.interval_score_before
    assert return_metrics(np.zeros(399), r[:399], 0.0, np.full(399, 1e-4)).calibration == {}  # < 200 tested hours
    assert set(return_metrics(np.zeros(400), r[:400], 0.0, np.full(400, 1e-4)).calibration) == {80, 95}
