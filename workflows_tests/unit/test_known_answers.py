"""Known-answer tests: each claim checked against a value computed independently of the code under test.

* `minimum_detectable_skill` against a Monte-Carlo power study of the one-sided DM test and
  against the exact closed form derived in the test's docstring;
* the volatility target against the root mean square of the next 24 log returns, read from
  the features frame by timestamp;
* `build_windows` and `build_fold` splits against window ends recounted from the hours present
  in the features frame, and the embargo between splits;
* `baselines.garch_variance` on clean GARCH(1,1) returns against the constant training variance
  and against the oracle forecast from the true parameters, with the i.i.d. negative case.
"""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.evaluation.baselines import constant_variance, garch_variance
from workflows.ml.windows import WindowSpec, build_fold, build_windows
from workflows.stats.losses import minimum_detectable_skill, qlike
from workflows.stats.significance import diebold_mariano

W, H = WindowSpec().window, WindowSpec().vol_horizon  # 48-hour inputs, 24-hour volatility target
EMBARGO = W + H


# --------------------------------------------------------------------------- minimum detectable skill


def _detection_rate(skill_true: float, n: int, sims: int, rng: np.random.Generator) -> float:
    """Share of `sims` samples of n hours in which the one-sided 5% DM test says the forecast beats zero.

    Returns r = f + e with f ~ N(0, s) the predictable part and e ~ N(0, 1 - s) the rest; the
    forecast is f itself, so its true skill 1 - E(f - r)^2 / E r^2 is exactly s.
    """
    f = rng.standard_normal((sims, n)) * np.sqrt(skill_true)
    r = f + rng.standard_normal((sims, n)) * np.sqrt(1 - skill_true)
    detected = [diebold_mariano(f[i] - r[i], r[i]).p_better < 0.05 for i in range(sims)]
    return float(np.mean(detected))


@pytest.mark.parametrize("n", [300, 1000])
def test_minimum_detectable_skill_is_detected_80_percent_of_the_time(n):
    """At skill = minimum_detectable_skill(n), the one-sided 5% DM test rejects in 80% of samples.

    Closed form (Gaussian returns, forecast = the predictable part f of r = f + e, Var r = 1,
    Var f = s): the loss differential d = (f - r)^2 - r^2 = -f^2 - 2 f e has mean -s and variance
    Var(f^2) + 4 Var(f e) = 2 s^2 + 4 s (1 - s) (the covariance term E[f^3 e] is 0). The DM
    statistic is about N(mu, 1) with mu = sqrt(n) s / sqrt(2 s^2 + 4 s (1 - s)); power 0.8 at
    level 0.05 needs mu = z_0.95 + z_0.8 = z, so n s = z^2 (4 - 2 s), i.e. s = 4 z^2 / (n + 2 z^2).
    To first order in s this is (2 z)^2 / n. Tolerances: the closed form within 5% (its s^2 term
    is 2 z^2 / n = 4% of s at n = 300); the simulated rate within 0.8 +- 0.05: Monte-Carlo standard
    error 0.007 (3,000 samples), the first-order formula's extra power (0.815 at n = 300 by the exact
    mu) and the skew of d (over rng seeds 0..4: 0.82 to 0.83 at n = 300, 0.79 to 0.82 at n = 1000).
    Power moves about 0.35 per unit of ln(s) here, so 0.05 still catches a skill off by 15%.
    """
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.80)
    mds = minimum_detectable_skill(n)
    assert mds == pytest.approx(4 * z**2 / (n + 2 * z**2), rel=0.05)

    rng = np.random.default_rng(20240)
    rate = _detection_rate(mds, n, sims=3000, rng=rng)
    assert rate == pytest.approx(0.80, abs=0.05)
    # and the rate really turns on the skill: half the skill is detected far less often, twice far more
    assert _detection_rate(mds / 2, n, sims=1000, rng=rng) < 0.65
    assert _detection_rate(2 * mds, n, sims=1000, rng=rng) > 0.93


# --------------------------------------------------------------------------- windows and splits


@pytest.fixture(scope="module")
def holey_features() -> pl.DataFrame:
    """60 days of features with three gaps (1, 3 and 2 missing hours), all well inside the first
    70% of the hours, so the train/validation boundary region is gap-free."""
    candles = generate_candles(SyntheticSpec(days=60, seed=3))
    pos = pl.int_range(pl.len())
    missing = (pos == 150) | pos.is_between(330, 332) | pos.is_between(500, 501)
    return compute_features(candles.filter(~missing))


def _hours(ts: pl.Series | np.ndarray) -> np.ndarray:
    """Unix hours of a polars datetime series or a numpy datetime64 array."""
    if isinstance(ts, pl.Series):
        return (ts.dt.epoch("s").to_numpy() // 3600).astype(np.int64)
    return np.asarray(ts).astype("datetime64[h]").astype(np.int64)


def _valid_end_hours(features: pl.DataFrame) -> np.ndarray:
    """Hours t whose inputs t-47..t and targets t+1..t+24 are all present, counted from the timestamps."""
    present = set(_hours(features["ts"]).tolist())
    return np.array(
        sorted(t for t in present if all(h in present for h in range(t - (W - 1), t + H + 1))), dtype=np.int64
    )


def test_volatility_target_is_rms_of_the_next_24_log_returns(holey_features):
    """For every window of every split, vol * target_scale = sqrt(mean(log_return[t+1..t+24]^2)),
    with the 24 returns looked up in the features frame by timestamp (t = the window's last hour)."""
    data = build_windows(holey_features, WindowSpec())
    by_hour = dict(zip(_hours(holey_features["ts"]).tolist(), holey_features["log_return"].to_list()))
    checked = 0
    for split in (data.train, data.val, data.test):
        for t, vol in zip(_hours(split.end_ts), split.vol):
            future = [by_hour[h] for h in range(t + 1, t + H + 1)]  # KeyError if an hour is missing
            rms = np.sqrt(np.mean(np.square(future)))
            assert vol * data.scaler.target_scale == pytest.approx(rms, rel=1e-5)
            checked += 1
    assert checked > 800 and min(len(data.val), len(data.test)) > 50  # every split was really exercised


def test_build_windows_splits_match_an_independent_recount(holey_features):
    """Splits of `build_windows`: train = the first 70% of complete windows, validation up to the 85%
    mark, test to the end, each later split starting only after the 72-hour embargo (no window of one
    split shares an input or target hour with another), and no window spans a gap."""
    spec = WindowSpec()
    data = build_windows(holey_features, spec)
    valid = _valid_end_hours(holey_features)
    n = len(valid)
    tr, va, te = (_hours(s.end_ts) for s in (data.train, data.val, data.test))

    np.testing.assert_array_equal(tr, valid[: int(n * spec.train_frac)])
    train_end, val_end = valid[int(n * spec.train_frac) - 1], valid[int(n * (spec.train_frac + spec.val_frac)) - 1]
    # the boundary regions hold no gap, so the embargo (in rows) is exactly 72 hours there
    hours = set(_hours(holey_features["ts"]).tolist())
    assert all(h in hours for h in range(train_end, val_end + EMBARGO + H + 1))
    np.testing.assert_array_equal(va, valid[(valid > train_end + EMBARGO) & (valid <= val_end)])
    np.testing.assert_array_equal(te, valid[valid > val_end + EMBARGO])
    # every training window's target horizon ends before any validation window's input starts; same for test
    assert tr.max() + H < va.min() - (W - 1)
    assert va.max() + H < te.min() - (W - 1)


@pytest.fixture(scope="module")
def fold_features() -> pl.DataFrame:
    """60 days of features with a 2-hour gap inside the validation period and a 1-hour gap inside the
    test period of the fold used below."""
    candles = generate_candles(SyntheticSpec(days=60, seed=5))
    pos = pl.int_range(pl.len())
    return compute_features(candles.filter(~(pos.is_between(1130, 1131) | (pos == 1290))))


def test_build_fold_periods_and_embargo(fold_features):
    """`build_fold`: test windows end in [S, S + test_hours), validation windows in the val_hours
    before S - embargo, training windows in the max_train_hours before that minus another embargo;
    each set equals the complete windows recounted from the timestamps, and train < validation < test
    with no shared input or target hour."""
    spec = WindowSpec()
    first = int(_hours(fold_features["ts"])[0])
    S, test_hours, val_hours, max_train = first + 1200, 150, 100, 400
    data = build_fold(fold_features, spec, S, test_hours, val_hours, max_train_hours=max_train)
    valid = _valid_end_hours(fold_features)
    tr, va, te = (_hours(s.end_ts) for s in (data.train, data.val, data.test))

    def expected(lo, hi):
        return valid[(valid >= lo) & (valid < hi)]

    val_lo = S - EMBARGO - val_hours
    train_hi = val_lo - EMBARGO
    np.testing.assert_array_equal(te, expected(S, S + test_hours))
    np.testing.assert_array_equal(va, expected(val_lo, S - EMBARGO))
    np.testing.assert_array_equal(tr, expected(train_hi - max_train, train_hi))
    # the period boundaries are inclusive at the start and exclusive at the end
    assert te[0] == S and te[-1] == S + test_hours - 1
    assert S + test_hours in set(valid.tolist())  # ... so the window ending at S + test_hours was left out
    # the gaps really removed windows from the validation and test periods
    assert len(va) < val_hours and len(te) < test_hours
    # train < validation < test: target horizons end before the next split's inputs begin
    assert tr.max() + H < va.min() - (W - 1)
    assert va.max() + H < te.min() - (W - 1)
    # at most max_train_hours of training window ends
    assert tr.max() - tr.min() < max_train


# --------------------------------------------------------------------------- GARCH baseline

ALPHA, BETA, UNCOND_SD = 0.05, 0.90, 0.006  # the synthetic source's GARCH(1,1) at BTC-like scale


def _garch_returns(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clean GARCH(1,1) with Gaussian shocks: (returns, conditional variance of each return)."""
    uncond = UNCOND_SD**2
    omega = uncond * (1 - ALPHA - BETA)
    z = rng.standard_normal(n)
    var, r = np.empty(n), np.empty(n)
    var[0] = uncond
    r[0] = np.sqrt(var[0]) * z[0]
    for t in range(1, n):
        var[t] = omega + ALPHA * r[t - 1] ** 2 + BETA * var[t - 1]
        r[t] = np.sqrt(var[t]) * z[t]
    return r, var


def _realised_variance(r: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Mean of r^2 over hours t+1..t+24 for each origin t."""
    c = np.concatenate([[0.0], np.cumsum(r**2)])
    return (c[origins + 1 + H] - c[origins + 1]) / H


def _qlike_losses(forecast: np.ndarray, realised: np.ndarray) -> np.ndarray:
    ratio = realised / forecast
    return ratio - np.log(ratio) - 1


TRAIN_HOURS, TEST_HOURS = 4000, 8000


def test_garch_baseline_beats_the_constant_on_garch_data():
    """On GARCH(1,1) returns (alpha 0.05, beta 0.90) the fitted GARCH's mean 24-hour variance forecast
    has a lower QLIKE than the constant training variance over 8,000 test hours, and it tracks the
    oracle forecast computed from the true parameters:
    E[var(t+k) | t] = v + (alpha + beta)^(k-1) (var(t+1) - v), v = omega / (1 - alpha - beta).
    Over seeds 0..19 the QLIKE gain over the constant was positive every time (0.0016 to 0.018, median
    0.009), the fitted GARCH kept at least 47% of the oracle's gain, and the correlation with the oracle
    was at least 0.969; the thresholds below leave room for that spread."""
    rng = np.random.default_rng(3)
    r, var = _garch_returns(TRAIN_HOURS + TEST_HOURS + H, rng)
    origins = np.arange(TRAIN_HOURS, len(r) - H)
    garch = garch_variance(r, slice(0, TRAIN_HOURS), origins, horizon=H)
    realised = _realised_variance(r, origins)
    constant = constant_variance(r[:TRAIN_HOURS], len(origins))  # the evaluation's constant baseline
    assert constant == pytest.approx(np.full(len(origins), np.mean(r[:TRAIN_HOURS] ** 2)), rel=1e-12)

    uncond = UNCOND_SD**2
    next_var = uncond * (1 - ALPHA - BETA) + ALPHA * r[origins] ** 2 + BETA * var[origins]
    decay = np.mean((ALPHA + BETA) ** np.arange(H))
    oracle = uncond + decay * (next_var - uncond)

    q_garch, q_const, q_oracle = qlike(garch, realised), qlike(constant, realised), qlike(oracle, realised)
    assert q_garch < q_const
    assert q_oracle < q_const  # the data really does reward a conditional forecast
    # qlike agrees with the textbook loss, and the fitted GARCH is close to the oracle
    assert q_garch == pytest.approx(np.mean(_qlike_losses(garch, realised)), rel=1e-9)
    assert q_garch - q_oracle < 0.75 * (q_const - q_oracle)  # at least a quarter of the oracle's gain
    assert np.corrcoef(garch, oracle)[0, 1] > 0.95
    assert np.median(garch / oracle) == pytest.approx(1.0, abs=0.1)


def test_garch_baseline_gains_nothing_on_constant_variance_returns():
    """Negative case: on i.i.d. Gaussian returns (constant variance) GARCH's QLIKE is within 0.002 of the
    constant training variance's (about 5% of that QLIKE, a quarter of the median gain on GARCH data).
    Over seeds 0..19 the difference was at most 0.001 either way. (A DM test is no use here: with 8,000
    hours it sometimes calls differences of 0.0001 significant, as GARCH follows the test period's level.)"""
    rng = np.random.default_rng(4)
    r = rng.standard_normal(TRAIN_HOURS + TEST_HOURS + H) * UNCOND_SD
    origins = np.arange(TRAIN_HOURS, len(r) - H)
    garch = garch_variance(r, slice(0, TRAIN_HOURS), origins, horizon=H)
    realised = _realised_variance(r, origins)
    constant = constant_variance(r[:TRAIN_HOURS], len(origins))  # the evaluation's constant baseline
    assert constant == pytest.approx(np.full(len(origins), np.mean(r[:TRAIN_HOURS] ** 2)), rel=1e-12)
    assert abs(qlike(garch, realised) - qlike(constant, realised)) < 0.002


def test_garch_forecast_at_t_uses_returns_up_to_t_only():
    """The forecast made at hour t changes when r[t] changes and not when r[t+1] changes."""
    rng = np.random.default_rng(5)
    r, _ = _garch_returns(2000 + 100, rng)
    train_end, t = 2000, 2050
    origins = np.array([t])
    base = garch_variance(r, slice(0, train_end), origins)[0]
    bumped_next = r.copy()
    bumped_next[t + 1] *= 5
    bumped_now = r.copy()
    bumped_now[t] *= 5
    assert garch_variance(bumped_next, slice(0, train_end), origins)[0] == pytest.approx(base, rel=1e-12)
    assert garch_variance(bumped_now, slice(0, train_end), origins)[0] > base * 1.01


def test_garch_forecast_is_the_mean_of_the_24_hour_term_structure():
    """For GARCH(1,1) the k-step variance forecast is v + p^(k-1) (s1 - v), with s1 the 1-step forecast,
    v the long-run variance and p = alpha + beta. So across origins the h-step mean forecast is an exact
    affine function of s1 with slope mean(p^0..p^(h-1)): from horizon 2 the slope is (1 + p) / 2, which
    gives p, and the horizon-24 slope must then equal mean(p^0..p^23)."""
    rng = np.random.default_rng(6)
    r, _ = _garch_returns(2000 + 300, rng)
    train, origins = slice(0, 2000), np.arange(2000, 2300 - H)
    one, two, day = (garch_variance(r, train, origins, horizon=h) for h in (1, 2, H))
    slope2, _ = np.polyfit(one, two, 1)
    slope24, _ = np.polyfit(one, day, 1)
    p = 2 * slope2 - 1
    assert 0.5 < p < 0.99  # a persistent but mean-reverting fit, so the horizons really differ
    assert slope24 < 0.9
    assert slope24 == pytest.approx(np.mean(p ** np.arange(H)), rel=1e-6)
    assert np.corrcoef(one, day)[0, 1] > 1 - 1e-9  # exactly affine
