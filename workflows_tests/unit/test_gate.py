"""Known answers for the promotion gate's rule (serving/promotion.py, serving/served_calibration.py,
stats/sequential.py).

Synthetic next-hour returns y = 0.3 x signal + N(0, 1) noise; forecasts built so that their MSE is an
exact multiple of the comparator's (noise made orthogonal to the comparator's errors), so the figures
the gate decides on are known in advance."""

import math

import numpy as np
import pytest
from scipy import integrate

from workflows.serving.promotion import GateConfig, decide
from workflows.serving.served_calibration import calibration_family, direction_check, interval_checks
from workflows.stats.calibration import coverage_test_mc
from workflows.stats.sequential import alpha_for, log_mixture_e, mixture_rho2, sequential_test
from workflows.stats.significance import holm

N = 2000


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(N)
    y = 0.3 * signal + rng.standard_normal(N)
    return y, 0.3 * signal, rng.standard_normal(N)  # returns, a skilled forecast, spare noise


def _worse_by(y, forecast, excess, noise):
    """`forecast` plus noise orthogonal to its errors, scaled so that its MSE is exactly (1 + excess) x forecast's."""
    e = forecast - y
    u = noise - (noise @ e) / (e @ e) * e
    return forecast + u * np.sqrt(excess * np.mean(e**2) / np.mean(u**2))


# --- the e-process ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("s", "t"), [(0.0, 1.0), (3.0, 100.0), (-2.0, 50.0), (40.0, 1000.0)])
def test_mixture_e_value_matches_numerical_integration(s, t):
    """The closed form is the half-normal mixture of exp(lambda s - lambda^2 t / 2), integrated numerically."""
    rho2 = 0.01
    rho = math.sqrt(rho2)

    def integrand(lam):
        return (
            math.exp(lam * s - lam**2 * t / 2) * 2 * math.exp(-(lam**2) / (2 * rho2)) / (rho * math.sqrt(2 * math.pi))
        )

    numeric, _ = integrate.quad(integrand, 0, np.inf)
    assert float(np.exp(log_mixture_e(np.array(s), np.array(t), rho2))) == pytest.approx(numeric, rel=1e-6)


def test_the_lifetime_budget_sums_to_alpha():
    parts = [alpha_for(0.05, k) for k in range(1, 100_001)]
    assert parts[0] == pytest.approx(0.05 * 6 / math.pi**2) and parts[1] == pytest.approx(parts[0] / 4)
    assert sum(parts) < 0.05 and sum(parts) == pytest.approx(0.05, rel=1e-4)


def test_the_e_process_holds_its_size_at_any_stopping_time_and_finds_a_real_drift():
    """Gaussian increments, 2,000 paths of 3,000 hours, judged on the whole path (every hour a look): the null
    (mean 0) ever rejected at most alpha of the time; a drift of 0.1 sd rejected on almost every path."""
    rng = np.random.default_rng(5)
    null = [sequential_test(rng.standard_normal(3000), 0.05, 1000, 30).rejected for _ in range(2000)]
    drift = [sequential_test(rng.standard_normal(3000) + 0.1, 0.05, 1000, 30).rejected for _ in range(200)]
    assert np.mean(null) <= 0.05  # measured 0.0275 (drift: 0.995)
    assert np.mean(drift) >= 0.95


def test_a_crossing_before_the_burn_in_does_not_count():
    d = np.r_[np.full(20, 5.0) + np.linspace(0, 1, 20), np.random.default_rng(0).standard_normal(200) - 20.0]
    early = sequential_test(d, 0.05, 100, 10)
    late = sequential_test(d, 0.05, 100, 30)
    assert early.rejected and early.crossed_at is not None and early.crossed_at < 20
    assert not late.rejected and late.e_max < late.threshold
    assert mixture_rho2(0.05, 100) == pytest.approx(10 * mixture_rho2(0.05, 1000))


# --- the rule ------------------------------------------------------------------------------------------------


def test_with_nothing_serving_a_no_skill_model_is_refused_and_a_skilled_one_promoted(series):
    y, skilled, noise = series
    worse = decide(y, _worse_by(y, np.zeros(N), 0.005, noise), None)
    assert worse.skill_vs_zero == pytest.approx(-0.005) and worse.comparator == "zero-return forecast"
    assert not worse.promoted and worse.e_max is not None and worse.threshold is not None
    assert worse.e_max < worse.threshold and worse.reason.startswith(
        "not shown more accurate than the zero-return forecast (null: no more"
    )
    good = decide(y, skilled, None)
    assert good.promoted and good.basis == "more accurate than zero"
    assert good.e_max is not None and good.threshold is not None
    assert good.e_max >= good.threshold == pytest.approx(1 / alpha_for(0.05, 1))
    assert good.level == pytest.approx(6 * 0.05 / math.pi**2) and good.test_index == 1


def test_against_an_incumbent_one_percent_worse_is_refused_and_a_better_one_promoted(series):
    y, skilled, noise = series
    worse = decide(y, _worse_by(y, skilled, 0.01, noise), skilled)
    assert worse.skill_vs_comparator == pytest.approx(-0.01) and not worse.promoted
    assert worse.comparator == "incumbent" and "worse than the incumbent by 0.1% of its MSE or more" in worse.reason
    better = decide(y, skilled, 0.2 * skilled)  # the full signal against a fifth of it
    assert better.promoted and better.basis == "non-inferior to the incumbent" and better.skill_vs_comparator > 0.04
    # a skill of 1.7% (the full signal against half of it) is not yet shown on 2000 hours: the test waits
    assert not decide(y, skilled, 0.5 * skilled).promoted


def test_later_tests_need_more_evidence(series):
    """The same evidence: the first test on the symbol promotes, the twentieth (alpha_20 = alpha_1 / 400) does not."""
    y, skilled, _ = series
    first = decide(y[:400], skilled[:400], None, test_index=1)
    late = decide(y[:400], skilled[:400], None, test_index=20)
    assert first.promoted and not late.promoted and late.e_max is not None and late.threshold is not None
    assert late.e_max < late.threshold
    assert first.threshold is not None and late.threshold == pytest.approx(400 * first.threshold)


def test_evidence_spanning_several_periods_is_decided_on_all_of_it(series):
    """A candidate with little skill: its own month (744 hours) does not show it, three months do -- and the
    decision on three months rests on every one of their hours."""
    rng = np.random.default_rng(8)
    n = 3 * 744
    signal = rng.standard_normal(n)
    y = 0.2 * signal + rng.standard_normal(n)
    f = 0.2 * signal
    month = decide(y[:744], f[:744], None)
    quarter = decide(y, f, None)
    assert not month.promoted and quarter.promoted and quarter.hours == n
    assert quarter.mse_candidate == pytest.approx(float(np.mean((f - y) ** 2)))


def test_too_few_hours_decide_nothing(series):
    y, skilled, _ = series
    d = decide(y[:50], skilled[:50], None)
    assert not d.promoted and not d.decided and d.hours == 50 and "starts judging at 100" in d.reason


def test_gate_config_is_validated():
    with pytest.raises(ValueError, match="min_hours"):
        GateConfig(min_hours=5)
    with pytest.raises(ValueError, match="alpha"):
        GateConfig(alpha=0.7)
    with pytest.raises(ValueError, match="margin"):
        GateConfig(margin=0.2)


# --- calibration of the served intervals and probabilities ------------------------------------------------------


def _vol_break(rng, n):
    """Returns whose volatility triples after the first 30% of the hours (the calibration hours), with a strongly
    skilled forecast."""
    vol = np.where(np.arange(n) < int(0.3 * n), 1.0, 3.0)
    signal = rng.standard_normal(n)
    return 0.6 * vol * signal + vol * rng.standard_normal(n), 0.6 * vol * signal, vol


def test_intervals_too_narrow_after_a_volatility_rise_are_refused_and_tracking_ones_accepted():
    y, f, vol = _vol_break(np.random.default_rng(1), 200)
    narrow = decide(y, f, None, sd_candidate=np.ones(200))  # the scale misses the rise: the intervals lag it
    assert narrow.coverage_80 is not None and narrow.kupiec_p_80 is not None
    assert narrow.coverage_80 < 0.72 and narrow.kupiec_p_80 < 0.05 and narrow.raw_coverage_80 < 0.5
    assert narrow.e_max is not None and narrow.threshold is not None
    assert not narrow.promoted and narrow.e_max >= narrow.threshold  # accurate enough, badly calibrated
    assert narrow.reason.startswith(
        f"the served 80% interval fails Kupiec's coverage test on 140 hours: coverage {narrow.coverage_80:.1%} "
        "(Monte Carlo p = "
    )
    assert narrow.calibration_hours == 60 and narrow.coverage_hours == 140
    tracking = decide(y, f, None, sd_candidate=vol)  # a scale that follows the volatility
    assert tracking.promoted, tracking.reason
    assert tracking.kupiec_p_80 > 0.05 and tracking.kupiec_p_95 > 0.05 and tracking.christoffersen_p_80 > 0.05
    # the Gaussian interval of a scale twice too large over-covers; the conformal quantile halves it back
    wide = decide(y, f, None, sd_candidate=2 * vol)
    assert wide.raw_coverage_80 > 0.95 and wide.coverage_80 == tracking.coverage_80 and wide.promoted
    assert wide.conformal_q80 == pytest.approx(tracking.conformal_q80 / 2)


def test_online_conformal_keeps_long_series_within_two_points():
    """2,000 hours, a volatility doubling halfway that the scale follows: 80% and 95% coverage within 2 points."""
    rng = np.random.default_rng(3)
    vol = np.where(np.arange(N) < N // 2, 1.0, 2.0)
    y = vol * rng.standard_normal(N)
    checks = interval_checks(y, np.zeros(N), vol)
    assert abs(checks[0.8].coverage - 0.8) < 0.02 and abs(checks[0.95].coverage - 0.95) < 0.02
    assert calibration_family(checks, None, 0.05).passed


def test_clustered_misses_fail_christoffersen():
    """Volatility alternating in 50-hour blocks that the scale ignores: about the right share of misses overall,
    all in the loud blocks."""
    rng = np.random.default_rng(2)
    vol = np.where((np.arange(N) // 50) % 2 == 0, 0.6, 1.3)
    y = vol * rng.standard_normal(N)
    checks = interval_checks(y, np.zeros(N), np.ones(N))
    assert abs(checks[0.8].coverage - 0.8) < 0.05 and checks[0.8].kupiec_p > 0.01
    assert checks[0.8].christoffersen_p < 1e-3
    assert checks[0.8].christoffersen_p < 1e-3
    (failure,) = [f for f in calibration_family(checks, None, 0.05).failures if "80%" in f]
    assert "Christoffersen's independence test" in failure
    assert calibration_family(interval_checks(y, np.zeros(N), vol), None, 0.05).passed  # the same hours, scaled


def test_direction_probabilities_worse_than_the_base_rate_are_refused(series):
    y, skilled, _ = series
    threshold = 0.5
    classes = np.where(y < -threshold, 0, np.where(y > threshold, 2, 1))
    rate = np.bincount(classes, minlength=3) / N
    confident_wrong = np.eye(3)[(classes + 1) % 3] * 0.8 + 0.2 / 3  # 87% on a class that did not happen
    good = decide(y, skilled, None, probs_candidate=np.tile(rate, (N, 1)), direction_threshold=threshold)
    assert good.promoted and good.brier == pytest.approx(good.brier_base_rate)
    bad = decide(y, skilled, None, probs_candidate=confident_wrong, direction_threshold=threshold)
    assert bad.brier is not None and bad.brier_base_rate is not None and bad.p_base_rate_better is not None
    assert bad.brier > bad.brier_base_rate and bad.p_base_rate_better < 1e-6 and not bad.promoted
    assert bad.reason.startswith("the served direction probabilities are significantly worse than the base-rate")
    assert f"Brier {bad.brier:.4f} vs {bad.brier_base_rate:.4f}" in bad.reason
    assert direction_check(np.eye(3)[classes] * 0.9 + 0.1 / 3, classes).skill > 0.5  # sharp and right


def test_an_exactly_calibrated_interval_is_refused_at_most_at_the_nominal_rate_at_100_hours():
    """100 hours, 400 seeded simulations: exact Gaussian intervals (their misses independent at the nominal rate)
    and the gate's own adaptive conformal intervals on an exact scale are refused by the Holm family of Kupiec and
    Christoffersen (Monte Carlo p) at 80% and 95% at most 5% of the time; intervals a third too narrow mostly."""
    rng = np.random.default_rng(12)
    exact = gated = narrow = 0
    reps = 400
    for _ in range(reps):
        y = rng.standard_normal(100)
        ps = []
        for level, z in ((0.8, 1.2816), (0.95, 1.96)):
            c = coverage_test_mc(np.abs(y) > z, level, draws=999)
            ps += [c.kupiec_p, c.independence_p]
        exact += bool((holm(ps) < 0.05).any())
        gated += not calibration_family(interval_checks(y, np.zeros(100), np.ones(100), draws=999), None, 0.05).passed
        ps = []
        for level, z in ((0.8, 1.2816), (0.95, 1.96)):
            c = coverage_test_mc(np.abs(y) > 0.67 * z, level, draws=999)
            ps += [c.kupiec_p, c.independence_p]
        narrow += bool((holm(ps) < 0.05).any())
    assert exact / reps <= 0.05 and gated / reps <= 0.05  # measured 0.0425 and 0.0125 (unadjusted chi-squared: 0.155)
    assert narrow / reps >= 0.8  # measured 0.995


def test_monte_carlo_p_values_are_seeded_and_reject_a_clear_miss_rate():
    miss = np.zeros(70, dtype=bool)
    miss[::5] = True  # 20% misses at nominal 95%
    a, b = coverage_test_mc(miss, 0.95), coverage_test_mc(miss, 0.95)
    assert a == b and a.kupiec_p < 0.001 and a.misses == 14
    fine = np.zeros(70, dtype=bool)
    fine[[10, 40, 65]] = True  # 3 misses, spread out
    assert coverage_test_mc(fine, 0.95).kupiec_p > 0.5 and coverage_test_mc(fine, 0.95).independence_p > 0.5


# --- the served record's table ------------------------------------------------------------------------------


def test_the_served_record_is_append_only_across_connections(tmp_path):
    """A forecast hour lands once: a rerun (the same hour, another forecast) adds nothing and changes nothing, also
    after the database was closed and opened again; a row without every column is refused with the column named."""
    from datetime import datetime, timedelta, timezone

    import duckdb

    from workflows.data.warehouse import SERVED_COLUMNS, append_served_forecast, load_served_forecasts

    hour = datetime(2026, 1, 1, 5, tzinfo=timezone.utc)
    row = dict.fromkeys(SERVED_COLUMNS) | {
        "symbol": "BTCUSDT",
        "forecast_hour": hour,
        "as_of_candle": hour - timedelta(hours=1),
        "served_at": hour - timedelta(minutes=50),
        "model": "m.pt",
        "return_pct": 0.01,
        "lo95_pct": -1.0,
        "hi95_pct": 1.0,
    }
    db = str(tmp_path / "w.duckdb")
    with duckdb.connect(db) as con:
        assert append_served_forecast(con, row)
        assert not append_served_forecast(con, row | {"return_pct": 0.5})
    with duckdb.connect(db) as con:  # a restart
        assert not append_served_forecast(con, row | {"return_pct": 0.7})
        assert append_served_forecast(con, row | {"forecast_hour": hour + timedelta(hours=1)})
        record = load_served_forecasts(con, "BTCUSDT")
        with pytest.raises(ValueError, match=r"lacks \['conformal_state'\]"):
            append_served_forecast(con, {k: v for k, v in row.items() if k != "conformal_state"})
    assert record["return_pct"].to_list() == [0.01, 0.01] and record["forecast_hour"][0] == hour
    assert record["hi95_pct"][0] == 1.0 and record["forecast_hour"].dtype.time_zone == "UTC"  # type: ignore[union-attr]


def test_an_older_served_record_gains_the_sd_column_and_keeps_its_rows(tmp_path):
    """A `served_forecasts` table written before the served sd was recorded: the next append adds the column in
    place, the old row keeps NULL there, the new row holds its sd."""
    from datetime import datetime, timedelta, timezone

    import duckdb

    from workflows.data.tables import TABLES
    from workflows.data.warehouse import SERVED_COLUMNS, append_served_forecast, load_served_forecasts

    hour = datetime(2026, 1, 1, 5, tzinfo=timezone.utc)
    db = str(tmp_path / "w.duckdb")
    with duckdb.connect(db) as con:
        con.execute(TABLES["served_forecasts"].replace("    sd_pct DOUBLE,\n", ""))
        old = "symbol, forecast_hour, as_of_candle, served_at, model, return_pct"
        con.execute(
            f"INSERT INTO served_forecasts ({old}) VALUES ('BTCUSDT', '2026-01-01 04:00', "
            "'2026-01-01 03:00', '2026-01-01 03:10', 'm.pt', 0.01)"
        )
        row = dict.fromkeys(SERVED_COLUMNS) | {
            "symbol": "BTCUSDT",
            "forecast_hour": hour,
            "as_of_candle": hour - timedelta(hours=1),
            "served_at": hour - timedelta(minutes=50),
            "model": "m.pt",
            "return_pct": 0.02,
            "sd_pct": 0.5,
        }
        assert append_served_forecast(con, row)
        record = load_served_forecasts(con, "BTCUSDT")
    assert record["sd_pct"].to_list() == [None, 0.5] and record["return_pct"].to_list() == [0.01, 0.02]


def _served_record(n: int, calibrated: bool, seed: int = 0):
    """A served record of n hours and the features holding their outcomes: the sd varies over a factor of 8;
    the intervals are forecast +- z x sd (calibrated) or of one width, z x the mean sd (too wide where the sd
    is low, too narrow where it is high: about nominal coverage on average)."""
    from datetime import datetime, timedelta, timezone

    import polars as pl

    rng = np.random.default_rng(seed)
    sd = 0.2 * np.exp(rng.uniform(0, np.log(8), n))
    actual = sd * rng.standard_normal(n)
    hours = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i) for i in range(n)]
    width = {80: 1.2816, 95: 1.96}
    half = {pct: z * (sd if calibrated else np.full(n, np.sqrt(np.mean(sd**2)))) for pct, z in width.items()}
    record = pl.DataFrame(
        {
            "forecast_hour": hours,
            "return_pct": np.zeros(n),
            **{f"lo{p}_pct": -half[p] for p in width},
            **{f"hi{p}_pct": half[p] for p in width},
            "p_down": np.full(n, None, dtype=object),
            "direction_threshold_pct": np.full(n, 0.1),
            "sd_pct": sd,
        },
        schema_overrides={"p_down": pl.Float64},
    )
    features = pl.DataFrame({"ts": hours, "log_return": actual / 100})
    return record, features


@pytest.mark.parametrize("calibrated", [True, False])
def test_the_served_record_shows_coverage_by_decile_of_the_served_sd(calibrated):
    """An interval that scales with the served sd holds its coverage in the lowest and the highest decile; one of
    fixed width covers about as often on average but not there, and the served record says so."""
    from workflows.serving.served_record import served_figures, served_record_markdown

    record, features = _served_record(2000, calibrated)
    figures = served_figures(record, features)
    for pct in (80, 95):
        c = figures.intervals[pct]
        assert len(c.by_sd) == 10 and sum(b.n for b in c.by_sd) == 2000
        assert c.by_sd[0].sd_high < c.by_sd[-1].sd_low
        assert c.holds_at_low_and_high_sd is calibrated
        if not calibrated:
            assert c.by_sd[0].observed > pct / 100 > c.by_sd[-1].observed
    text = served_record_markdown("BTCUSDT", figures, None)
    assert "| level | decile | sd (pct) | hours | coverage | Kupiec p | interval score (pct) |" in text
    b = figures.intervals[80].by_sd[0]
    assert f"| 80% | 1 | {b.sd_low:.3g} .. {b.sd_high:.3g} | {b.n} | {b.observed:.1%} |" in text
    verdict = "holds" if calibrated else "does not hold"
    assert f"80%: coverage in the lowest and the highest sd decile {verdict}" in text
    # a record whose rows carry no sd (served before it was recorded) shows no deciles and says so
    bare = served_figures(record.with_columns(sd_pct=None), features)
    assert bare.intervals[80].by_sd == () and bare.intervals[80].holds_at_low_and_high_sd is None
    assert "Coverage by deciles of the served sd: none yet" in served_record_markdown("BTCUSDT", bare, None)
