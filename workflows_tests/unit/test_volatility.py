"""Known answers for the volatility evidence: HAR-RV recovers a simulated HAR process (and finds no
memory in i.i.d. returns), the QLIKE Diebold-Mariano test keeps its size at overlapping 24-hour targets
(where ignoring the overlap does not) and still finds a better forecast, Mincer-Zarnowitz tells a biased
forecast from an unbiased one, and the attention-vs-autocorrelation readings are exact on planted maps."""

import numpy as np
import pytest

from workflows.attention.volatility import (
    LAG_GROUPS,
    abs_return_acf,
    by_lag,
    group_lifts,
    hour_of_day,
    local_peaks,
)
from workflows.evaluation.baselines import (
    VOL_BASELINES,
    HARModel,
    LogHARModel,
    LogRecalibration,
    constant_variance,
    fit_har_qlike,
    seasonal_factors,
    volatility_baselines,
)
from workflows.stats.losses import mincer_zarnowitz, qlike_losses
from workflows.stats.significance import dm_test

TRUE_HAR = (2e-6, (0.30, 0.35, 0.20))  # intercept, (1 h, 24 h, 1 week): persistence 0.85


def _simulate_har(n: int, seed: int, intercept: float = TRUE_HAR[0], coef=TRUE_HAR[1]) -> np.ndarray:
    """Returns whose squared value is a HAR process: r_t^2 = m_t * e_t with E[e_t] = 1 and
    m_t = b0 + b1 r2_{t-1} + b24 mean(r2_{t-24..t-1}) + b168 mean(r2_{t-168..t-1})."""
    rng = np.random.default_rng(seed)
    b1, b24, b168 = coef
    burn = 2000
    total = n + burn
    level = intercept / (1 - sum(coef))
    r2 = np.full(total, level)
    csum = np.concatenate([[0.0], np.cumsum(r2)])
    shocks = rng.standard_normal(total) ** 2  # chi-square(1): mean 1, heavy right tail like squared returns
    for t in range(168, total):
        m = intercept + b1 * r2[t - 1] + b24 * (csum[t] - csum[t - 24]) / 24 + b168 * (csum[t] - csum[t - 168]) / 168
        r2[t] = m * shocks[t]
        csum[t + 1] = csum[t] + r2[t]
    signs = rng.choice([-1.0, 1.0], total)
    return (signs * np.sqrt(r2))[burn:]


def test_har_rv_recovers_the_coefficients_of_a_simulated_har_process():
    r = _simulate_har(60_000, seed=1)
    fit = HARModel.fit(r, 0, len(r), horizon=1)
    assert fit.coef == pytest.approx(TRUE_HAR[1], abs=0.05)
    assert fit.intercept == pytest.approx(TRUE_HAR[0], rel=0.5)
    # and its forecasts beat the constant variance on later hours of the same process (QLIKE, DM at h = 1)
    train = 40_000
    fit = HARModel.fit(r, 0, train, horizon=1)
    origins = np.arange(train, len(r) - 1)
    realised = r[origins + 1] ** 2
    har = fit.predict(r, origins)
    const = constant_variance(r[:train], len(origins))
    dm = dm_test(qlike_losses(har, realised) - qlike_losses(const, realised))
    assert dm.p_better < 1e-6


TRUE_LOG_HAR = (0.15 * np.log(1e-5), (0.30, 0.35, 0.20))  # intercept, (1 h, 24 h, 1 week) in logs
LOG_SHOCK_SD = 1.0


def _simulate_log_har(n: int, seed: int, season: np.ndarray | None = None) -> np.ndarray:
    """Returns whose log squared value is a log-HAR process with lognormal shocks (a mean of 1):
    ln m_t = c + b1 ln r2_{t-1} + b24 ln mean(r2_{t-24..t-1}) + b168 ln mean(r2_{t-168..t-1}),
    r_t^2 = m_t * exp(s z_t - s^2 / 2); times an hour-of-day factor `season[t % 24]` when given."""
    rng = np.random.default_rng(seed)
    c, (b1, b24, b168) = TRUE_LOG_HAR
    burn = 2_000
    total = n + burn
    r2 = np.full(total, 1e-5)
    csum = np.concatenate([[0.0], np.cumsum(r2)])
    shocks = np.exp(LOG_SHOCK_SD * rng.standard_normal(total) - LOG_SHOCK_SD**2 / 2)
    for t in range(168, total):
        log_m = (
            c
            + b1 * np.log(r2[t - 1])
            + b24 * np.log((csum[t] - csum[t - 24]) / 24)
            + b168 * np.log((csum[t] - csum[t - 168]) / 168)
        )
        r2[t] = np.exp(log_m) * shocks[t]
        csum[t + 1] = csum[t] + r2[t]
    r = rng.choice([-1.0, 1.0], total) * np.sqrt(r2)
    if season is not None:
        r = r * np.sqrt(season[np.arange(total) % 24])
    return r[burn:]


def test_log_har_recovers_the_coefficients_of_a_simulated_log_har_process_and_its_variance():
    r = _simulate_log_har(60_000, seed=11)
    fit = LogHARModel.fit(r, 0, len(r), horizon=1)
    assert fit.coef == pytest.approx(TRUE_LOG_HAR[1], abs=0.03)
    # the intercept absorbs the mean log shock, -s^2 / 2; smearing restores E[shock] = 1
    assert fit.intercept == pytest.approx(TRUE_LOG_HAR[0] - LOG_SHOCK_SD**2 / 2, abs=0.3)
    assert fit.smearing == pytest.approx(np.exp(LOG_SHOCK_SD**2 / 2), rel=0.05)
    # the back-transformed forecast is of the variance: its mean matches the mean squared return
    origins = np.arange(1_000, len(r) - 1)
    assert np.mean(fit.predict(r, origins)) == pytest.approx(np.mean(r[origins + 1] ** 2), rel=0.1)
    # and the levels HAR fitted by QLIKE recovers the levels process the OLS test above uses
    levels = _simulate_har(60_000, seed=1)
    q = fit_har_qlike(levels, 0, len(levels), horizon=1)
    assert q.coef == pytest.approx(TRUE_HAR[1], abs=0.05)


def test_seasonal_log_har_finds_the_daily_shape_on_training_hours_and_beats_plain_log_har():
    season = 1 + 0.8 * np.cos(2 * np.pi * (np.arange(24) - 14) / 24)
    r = _simulate_log_har(30_000, seed=12, season=season)
    hours = np.arange(len(r)) + 2_000  # integer UTC hours; the simulation's hour of day is (t + burn) % 24
    factors = seasonal_factors(r[:20_000], hours[:20_000])
    expected = season[np.arange(24)]  # hours % 24 == (index + 2000) % 24 == the simulation's t % 24
    assert factors == pytest.approx(expected / expected.mean(), rel=0.15)
    train = 20_000
    # at h = 1 (over 24 hours the daily shape averages out of the target)
    origins = np.arange(train, len(r) - 1)
    realised = HARModel.target(r, origins, 1)
    plain = LogHARModel.fit(r, 0, train, 1).predict(r, origins)
    seasonal = LogHARModel.fit(r, 0, train, 1, hours=hours, seasonal=True).predict(r, origins, hours=hours)
    dm = dm_test(qlike_losses(seasonal, realised) - qlike_losses(plain, realised), 1, long_memory=True)
    assert dm.p_better < 0.01
    # without a daily shape the factors stay near 1
    flat = _simulate_log_har(30_000, seed=13)
    assert np.abs(seasonal_factors(flat[:20_000], hours[:20_000]) - 1).max() < 0.15


def test_har_x_uses_volume_that_drives_the_variance_and_only_past_volume():
    rng = np.random.default_rng(14)
    n = 20_000
    abnormal = rng.standard_normal(n)  # abnormal log volume, known at its hour
    log_volume = 8 + abnormal
    r = rng.standard_normal(n) * 0.005 * np.exp(0.4 * np.concatenate([[0.0], abnormal[:-1]]))  # next hour's size
    fit = LogHARModel.fit(r, 0, 15_000, 1, log_volume=log_volume)
    assert fit.coef[3] == pytest.approx(0.8, abs=0.1)  # ln r^2 moves by 2 x 0.4 per unit of last hour's volume
    origins = np.arange(15_000, n - 1)
    realised = r[origins + 1] ** 2
    with_volume = fit.predict(r, origins, log_volume=log_volume)
    plain = LogHARModel.fit(r, 0, 15_000, 1).predict(r, origins)
    assert dm_test(qlike_losses(with_volume, realised) - qlike_losses(plain, realised), 1, True).p_better < 0.01
    later = log_volume.copy()
    later[origins[0] + 1 :] += 5  # volume after the origin must not move its forecast
    assert fit.predict(r, origins[:1], log_volume=later) == pytest.approx(with_volume[:1])


def test_har_rv_finds_no_memory_in_iid_returns():
    r = np.random.default_rng(2).standard_t(5, 60_000) * 0.006
    fit = HARModel.fit(r, 0, len(r), horizon=1)
    assert abs(fit.coef[0]) < 0.03  # the 24 h and 1 week means are nearly constant here: only their sum is tight
    assert abs(sum(fit.coef)) < 0.2  # against 0.85 in the HAR process above
    train = 40_000
    origins = np.arange(train, len(r) - 1)
    realised = r[origins + 1] ** 2
    har = HARModel.fit(r, 0, train, horizon=1).predict(r, origins)
    const = constant_variance(r[:train], len(origins))
    assert dm_test(qlike_losses(har, realised) - qlike_losses(const, realised)).p_better > 0.05


def test_har_rv_uses_only_the_past_and_its_24_hour_target_is_the_mean_of_the_next_24_squares():
    r = _simulate_har(5_000, seed=3)
    origins = np.array([1000, 2000, 3000])
    assert HARModel.target(r, origins, 24) == pytest.approx([np.mean(r[o + 1 : o + 25] ** 2) for o in origins])
    x = HARModel.components(r, origins)
    assert x[:, 2] == pytest.approx([np.mean(r[o - 167 : o + 1] ** 2) for o in origins])
    fit = HARModel.fit(r, 0, 4_000, horizon=24)
    bumped = r.copy()
    bumped[origins[0] + 1] *= 10  # a future return must not move the forecast at the origin
    assert fit.predict(bumped, origins[:1]) == pytest.approx(fit.predict(r, origins[:1]))


def test_every_baseline_is_fitted_for_both_horizons_and_on_training_hours_only():
    r = _simulate_har(4_000, seed=4)
    hours = np.arange(len(r)) + 7
    log_volume = 5 + np.random.default_rng(4).standard_normal(len(r))
    origins = np.arange(3_000, 3_900)
    out, errors = volatility_baselines(r, 0, 2_800, origins, (1, 24), hours=hours, log_volume=log_volume)
    assert not errors
    assert set(out[1]) == set(out[24]) == set(VOL_BASELINES)
    assert all(np.all(v > 0) and len(v) == len(origins) for h in out for v in out[h].values())
    later = r.copy()
    later[2_900:] *= 3  # hours after training change the inputs at the origins but not the fitted parameters
    moved, _ = volatility_baselines(later, 0, 2_800, origins, (1, 24), hours=hours, log_volume=log_volume)
    assert moved[24]["constant"] == pytest.approx(out[24]["constant"])
    for name in ("har_rv", "har_rv_qlike", "log_har", "log_har_seasonal", "har_x_volume"):
        assert np.mean(moved[24][name]) > 2 * np.mean(out[24][name]), name
    # a spike in one hour of day after training moves no seasonal factor: the forecasts at an origin
    # before the spike are unchanged
    spiked = r.copy()
    spiked[3_500:][(hours[3_500:] % 24) == 5] *= 20
    kept, _ = volatility_baselines(spiked, 0, 2_800, origins[:400], (24,), hours=hours, log_volume=log_volume)
    for name in ("log_har_seasonal", "garch_seasonal"):
        assert kept[24][name] == pytest.approx(out[24][name][:400], rel=1e-6), name
    # without hours or volume, the baselines that need them are simply absent
    plain, _ = volatility_baselines(r, 0, 2_800, origins, (24,))
    assert set(plain[24]) == set(VOL_BASELINES) - {"log_har_seasonal", "garch_seasonal", "har_x_volume"}


def _overlapping_targets(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The expected and the realised mean variance of the next 24 hours (overlapping), under a persistent
    true hourly variance."""
    log_var = np.convolve(rng.normal(0, 0.25, n + 24 + 199), np.ones(200) / 10, mode="valid")
    true = np.exp(log_var) * 1e-5
    r2 = true * rng.standard_normal(len(true)) ** 2
    day = np.ones(24) / 24
    # hours t+1 .. t+24 of origin t
    return np.convolve(true, day, mode="valid")[1 : n + 1], np.convolve(r2, day, mode="valid")[1 : n + 1]


def test_qlike_dm_keeps_its_size_at_overlapping_horizons_and_finds_a_better_forecast():
    rng = np.random.default_rng(5)
    proper, naive, power = [], [], []
    for _ in range(150):
        true, realised = _overlapping_targets(rng, 2_000)
        # two equally good forecasts: the truth with independent persistent errors of the same size
        err_a = np.exp(np.convolve(rng.normal(0, 0.3, 2_000 + 47), np.ones(48) / 7, mode="valid"))
        err_b = np.exp(np.convolve(rng.normal(0, 0.3, 2_000 + 47), np.ones(48) / 7, mode="valid"))
        d = qlike_losses(true * err_a, realised) - qlike_losses(true * err_b, realised)
        proper.append(dm_test(d, horizon=24).p_two_sided < 0.05)
        naive.append(dm_test(d, horizon=1).p_two_sided < 0.05)
        better = qlike_losses(true, realised) - qlike_losses(np.full(len(true), true.mean()), realised)
        power.append(dm_test(better, horizon=24).p_better < 0.05)
    assert np.mean(proper) <= 0.12  # about the nominal 5%
    assert np.mean(naive) >= 2 * max(np.mean(proper), 0.05)  # ignoring the overlap rejects far too often
    assert np.mean(power) >= 0.9


def test_mincer_zarnowitz_tells_a_biased_forecast_from_an_unbiased_one():
    rng = np.random.default_rng(6)
    true, realised = _overlapping_targets(rng, 6_000)
    fair = mincer_zarnowitz(true, realised, horizon=24)
    assert fair.unbiased and fair.slope_ci[0] < 1 < fair.slope_ci[1] and fair.level == pytest.approx(1, abs=0.1)
    assert fair.lags >= 24  # sized to the memory, never below the overlap
    doubled = mincer_zarnowitz(2 * true, realised, horizon=24)  # right swings, twice the level
    assert not doubled.unbiased and doubled.level == pytest.approx(0.5, abs=0.05) and doubled.p_slope > 0.05
    centre = np.exp(np.mean(np.log(true)))
    swinging = centre * (true / centre) ** 2  # moves twice as much as the variance does (in logs)
    wild = mincer_zarnowitz(swinging, realised, horizon=24)
    assert not wild.unbiased and wild.slope == pytest.approx(0.5, abs=0.1) and wild.p_slope < 0.01
    flat_low = mincer_zarnowitz(np.full(len(true), 0.5 * realised.mean()), realised, horizon=24)
    assert not flat_low.unbiased and flat_low.slope != flat_low.slope  # a constant has no slope
    flat_fair = mincer_zarnowitz(np.full(len(true), realised.mean()), realised, horizon=24)
    assert flat_fair.unbiased
    # a per-fold constant (four values) has no slope to print either, though it varies
    folds = np.repeat(realised.reshape(4, -1).mean(axis=1), len(true) // 4)
    assert mincer_zarnowitz(folds, realised, horizon=24).slope != mincer_zarnowitz(folds, realised, 24).slope
    # a zero realised variance (a flat hour) is left out of the logs and counted
    zeroed = realised.copy()
    zeroed[:5] = 0.0
    assert mincer_zarnowitz(true, zeroed, horizon=24).dropped == 5


def test_abs_return_acf_matches_a_direct_computation_and_never_bridges_a_gap():
    rng = np.random.default_rng(7)
    r = rng.standard_t(5, 3_000) * np.repeat(rng.uniform(0.5, 2, 30), 100)
    hours = np.arange(3_000)
    a = np.abs(r) - np.abs(r).mean()
    direct = [np.mean(a[:-k] * a[k:]) / np.var(np.abs(r)) for k in (1, 24)]
    acf = abs_return_acf(hours, r, 48)
    assert acf[[0, 23]] == pytest.approx(direct, rel=1e-9)
    # with a gap, the pairs across it are absent: lag-1 pairs drop by exactly the one that spans it
    gapped = np.concatenate([hours[:1_500], hours[1_500:] + 5])
    assert np.isfinite(abs_return_acf(gapped, r, 48)).all()


def test_local_peaks_and_lag_order():
    values = np.array([5.0, 1, 1, 3, 1, 1, 4, 1])
    assert local_peaks(values) == [1, 7, 4]
    w = np.zeros((2, 48))
    w[:, -1] = 1.0  # the newest position is 1 hour ago
    assert by_lag(w)[0, 0] == 1.0


def test_group_lifts_mark_planted_attention_and_not_uniform():
    rng = np.random.default_rng(8)
    n, t = 2_000, 48
    planted = rng.dirichlet(np.ones(t), n) * 0.5
    planted[:, -3:] += 0.25 / 3  # last 3 hours
    planted[:, t - 25 : t - 22] += 0.25 / 3  # 23-25 hours ago
    lifts = group_lifts(planted, resamples=200)
    for name in LAG_GROUPS:
        _lift, (lo, _hi) = lifts[name]
        assert lo > 1.5, name
    uniform = group_lifts(rng.dirichlet(np.ones(t) * 50, n), resamples=200)
    for name in LAG_GROUPS:
        _lift, (lo, hi) = uniform[name]
        assert lo < 1 < hi, name


def test_hour_of_day_correlation_is_positive_only_when_attention_follows_the_cycle():
    rng = np.random.default_rng(9)
    n, t = 4_000, 48
    predicted = np.arange(n) + 5
    cycle = 1 + 0.5 * np.cos(2 * np.pi * (np.arange(24) - 15) / 24)
    train_hours = np.arange(10_000)
    train_returns = rng.standard_normal(10_000) * 0.01 * cycle[train_hours % 24]
    follows = rng.dirichlet(np.ones(t) * 20, n)
    follows[:, t - 24] *= cycle[predicted % 24]
    follows /= follows.sum(axis=1, keepdims=True)
    flat = rng.dirichlet(np.ones(t) * 20, n)
    yes = hour_of_day(follows, predicted, train_hours, train_returns, {"flat": flat}, resamples=200)
    no = hour_of_day(flat, predicted, train_hours, train_returns, {"flat": follows}, resamples=200)
    assert yes.follows_cycle and yes.correlation_ci[0] > 0.2
    assert not no.follows_cycle and no.correlation_ci[0] < 0 < no.correlation_ci[1]


def _clustered_training_returns(n: int, rng: np.random.Generator) -> np.ndarray:
    """Returns whose size clusters (a slow AR(1) log volatility) and follows the clock: the autocorrelation of
    |r| decays from lag 1 and rises again near 24 and 48 hours."""
    from scipy import signal

    slow = np.asarray(signal.lfilter([1.0], [1.0, -0.98], rng.normal(0, 0.15, n)))
    cycle = 1 + 0.3 * np.cos(2 * np.pi * (np.arange(n) % 24 - 14) / 24)
    return 0.005 * cycle * np.exp(slow) * rng.standard_normal(n)


def _windows_with_profile(profile: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """(n, T) attention rows, oldest first, whose mean by lag (1 .. T hours ago) follows `profile`."""
    logits = np.log(np.maximum(profile, 1e-6))[::-1] + rng.normal(0, noise, (n, len(profile)))
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def test_a_profile_that_merely_decays_with_lag_is_not_read_as_ranking_like_the_autocorrelation():
    """Untrained and shuffled-target controls whose profiles decay with lag, as a recurrent model's do: a model
    whose profile also merely decays ranks no better than they do (intervals overlap), though SciPy's p is
    tiny; a model whose profile has the autocorrelation's daily bumps clears them."""
    from workflows.attention.volatility import volatility_attention

    rng = np.random.default_rng(21)
    n_train, n, t = 20_000, 2_000, 48
    train_returns = _clustered_training_returns(n_train, rng)
    train_end = np.arange(n_train).astype("datetime64[h]") - np.timedelta64(1, "h")  # return i is hour i
    test_end = np.arange(n_train + 200, n_train + 200 + n).astype("datetime64[h]")
    acf = abs_return_acf(np.arange(n_train), train_returns, t)
    assert acf[23] > acf[11] and acf[47] > acf[35]  # the daily bumps
    decay = np.exp(-np.arange(1, t + 1) / 10)
    controls = {
        "untrained": _windows_with_profile(decay, n, rng, 0.8),
        "shuffled_targets": _windows_with_profile(decay, n, rng, 0.8),
    }
    decaying = volatility_attention(
        _windows_with_profile(decay, n, rng, 0.3), controls, test_end, train_end, train_returns, resamples=300
    )
    # SciPy's p (the 48 smooth lags taken as independent) calls it highly significant; the intervals overlap
    assert decaying.spearman_p < 1e-6 and decaying.spearman > 0.5
    assert decaying.spearman_ci[0] <= max(hi for _lo, hi in decaying.control_spearman_ci.values())
    assert not decaying.matches_acf
    follows = volatility_attention(
        _windows_with_profile(np.maximum(acf, 0.01), n, rng, 0.3),
        controls,
        test_end,
        train_end,
        train_returns,
        resamples=300,
    )
    assert follows.matches_acf
    assert follows.spearman_ci[0] > max(hi for _lo, hi in follows.control_spearman_ci.values())


def test_hour_of_day_reading_with_the_input_size_partialled_out_does_not_credit_a_size_pointer():
    """Busy hours of day have large returns; a map that weighs the hour 24 h ago by its |r| (a size pointer,
    no clock in it) correlates with the daily cycle through the inputs. With |r| 24 h ago partialled out it
    does not follow the cycle; a map that follows the clock itself still does."""
    rng = np.random.default_rng(22)
    n, t = 4_000, 48
    predicted = np.arange(n) + 5
    cycle = 1 + 0.6 * np.cos(2 * np.pi * (np.arange(24) - 15) / 24)
    train_hours = np.arange(10_000)
    train_returns = rng.standard_normal(10_000) * 0.01 * cycle[train_hours % 24]
    size_24h = np.abs(rng.standard_normal(n) * cycle[predicted % 24])  # |r| of the hour 24 h before, busy-driven
    flat = rng.dirichlet(np.ones(t) * 20, n)
    pointer = flat.copy()
    pointer[:, t - 24] *= 1 + 2 * size_24h
    pointer /= pointer.sum(axis=1, keepdims=True)
    clock = flat.copy()
    clock[:, t - 24] *= cycle[predicted % 24]
    clock /= clock.sum(axis=1, keepdims=True)
    ctrl = {"flat": rng.dirichlet(np.ones(t) * 20, n)}
    naive = hour_of_day(pointer, predicted, train_hours, train_returns, ctrl, resamples=200)
    assert naive.follows_cycle and not naive.partialled  # what the reading said without the partial
    honest = hour_of_day(pointer, predicted, train_hours, train_returns, ctrl, resamples=200, size_24h=size_24h)
    assert honest.partialled and not honest.follows_cycle
    assert honest.correlation_ci[0] < 0.05
    kept = hour_of_day(clock, predicted, train_hours, train_returns, ctrl, resamples=200, size_24h=size_24h)
    assert kept.follows_cycle


def test_log_recalibration_shrinks_a_forecast_that_swings_twice_too_much_and_leaves_a_fair_one():
    rng = np.random.default_rng(23)
    true, realised = _overlapping_targets(rng, 4_000)
    centre = np.exp(np.mean(np.log(true)))
    wild = centre * (true / centre) ** 2  # moves twice as much as the variance does, in logs
    val, test = slice(0, 1_500), slice(2_000, 4_000)  # fitted on one stretch, applied to a later one
    fit = LogRecalibration.fit(wild[val], realised[val])
    assert fit.slope == pytest.approx(0.5, abs=0.1)
    fixed = fit.apply(wild[test])
    assert np.mean(qlike_losses(fixed, realised[test])) < 0.9 * np.mean(qlike_losses(wild[test], realised[test]))
    fair = LogRecalibration.fit(true[val], realised[val])
    assert fair.slope == pytest.approx(1.0, abs=0.15)
    assert np.mean(fair.apply(true[test])) == pytest.approx(np.mean(realised[test]), rel=0.15)
    with pytest.raises(ValueError, match="at least 30 validation hours"):
        LogRecalibration.fit(true[:20], realised[:20])
