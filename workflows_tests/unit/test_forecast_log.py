"""The forecast log and period models, without Dagster: train once per period, forecast once per hour."""

from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timezone

import duckdb
import numpy as np
import polars as pl
import pytest

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.evaluation import forecast_log as fl
from workflows.evaluation.evidence import ForecastSet, evaluate_forecasts
from workflows.ml.period_models import registered, train_period_model
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.profiles import control_recipe, recipe_for

UTC = timezone.utc
CFG = PeriodConfig(train_days=40, min_train_days=30, val_days=7)
NOV, DEC = ForecastPeriod.from_key("2025-11-01"), ForecastPeriod.from_key("2025-12-01")


def _recipes():
    recipes = {"attention_lstm": recipe_for("attention_lstm", "ci"), "multitask": recipe_for("multitask", "ci")}
    recipes["no_attention_lstm"] = control_recipe("no_attention_lstm", "ci")
    return {k: replace(v, train=replace(v.train, epochs=1)) for k, v in recipes.items()}


def _forecast(con, feats, period, folder, code="1", log=None):
    """One period as the assets do it: its models (trained or reused), then the forecasts not yet stored."""
    models = {
        k: train_period_model(lambda: nullcontext(con), feats, "BTC", k, r, period, CFG, folder, code, "ci", log=log)
        for k, r in _recipes().items()
    }
    ckpts = {k: m.load() for k, m in models.items()}
    before = fl.stored_versions(con, "BTC", period.key)
    update = fl.update_period(con, feats, "BTC", period, ckpts, CFG)
    changed = update.reason.startswith("versions changed")
    assert update.recomputed == (not before or changed)
    return models, update


@pytest.fixture(scope="module")
def feats():
    return compute_features(generate_candles(SyntheticSpec(days=110, seed=3)))  # 2025-09-13 .. 2025-12-31


def _log(con, period):
    return con.execute(
        "SELECT origin_ts, name, quantity, value, written_at FROM forecast_log WHERE period = ? "
        "ORDER BY origin_ts, name, quantity",
        [period],
    ).pl()


def test_a_day_inside_a_period_trains_nothing_and_adds_that_days_forecasts(feats, tmp_path, one_thread):
    con = duckdb.connect()
    upto = feats.filter(pl.col("ts") < datetime(2025, 12, 10, tzinfo=UTC))
    _forecast(con, upto, NOV, tmp_path)
    models, update = _forecast(con, upto, DEC, tmp_path)
    assert all(m.trained for m in models.values()) and update.recomputed
    # Dec's models warm-start from Nov's, and train only on hours before December
    nov = registered(con, "BTC", NOV.key, "attention_lstm")
    assert nov is not None and models["attention_lstm"].warm_from == nov.sha256
    before = _log(con, DEC.key)
    first_hours = before["origin_ts"].n_unique()
    assert first_hours == 9 * 24 - 24  # origins of Dec 1-9 whose 24 targets have arrived

    upto2 = feats.filter(pl.col("ts") < datetime(2025, 12, 11, tzinfo=UTC))  # one more day of candles
    models2, update2 = _forecast(con, upto2, DEC, tmp_path)
    assert not any(m.trained for m in models2.values())  # nothing trained
    assert {m.sha256 for m in models2.values()} == {m.sha256 for m in models.values()}
    assert not update2.recomputed and update2.origins_added == 24 and update2.rows_deleted == 0  # that day only
    after = _log(con, DEC.key)
    assert after["origin_ts"].n_unique() == first_hours + 24
    # earlier rows untouched: same values, same written_at
    kept = after.filter(pl.col("origin_ts") <= before["origin_ts"].max())
    assert kept.equals(before)
    assert _log(con, NOV.key)["written_at"].n_unique() == 1


def test_a_candle_corrected_inside_a_logged_period_recomputes_its_hours_from_a_day_before(tmp_path, one_thread):
    candles = generate_candles(SyntheticSpec(days=110, seed=3))
    upto = datetime(2025, 11, 20, tzinfo=UTC)
    feats = compute_features(candles).filter(pl.col("ts") < upto)
    con = duckdb.connect()
    _forecast(con, feats, NOV, tmp_path)
    before = _log(con, NOV.key)
    # the exchange corrects the close of 2025-11-10 12:00 after its hours were logged
    hour = datetime(2025, 11, 10, 12, tzinfo=UTC)
    fixed = candles.with_columns(
        pl.when(pl.col("ts") == hour).then(pl.col("close") * 1.02).otherwise(pl.col("close")).alias("close")
    )
    fixed = fixed.with_columns(pl.max_horizontal("high", "close").alias("high"))
    corrected = compute_features(fixed).filter(pl.col("ts") < upto)
    models, update = _forecast(con, corrected, NOV, tmp_path)
    assert not any(m.trained for m in models.values())  # the training slice (before November) is unchanged
    # the hours from a day before the corrected one (whose 24-hour targets read it) are recomputed, the rest kept
    assert not update.recomputed and "inputs of" in update.reason, update.reason
    redo = datetime(2025, 11, 9, 12)
    assert update.rows_deleted == before.filter(pl.col("origin_ts") >= redo).height
    after = _log(con, NOV.key)
    assert after.filter(pl.col("origin_ts") < redo).equals(before.filter(pl.col("origin_ts") < redo))
    actual = after.filter((pl.col("name") == "observed") & (pl.col("quantity") == "actual"))
    old = before.filter((pl.col("name") == "observed") & (pl.col("quantity") == "actual"))
    moved = actual.join(old, on="origin_ts").filter((pl.col("value") - pl.col("value_right")).abs() > 1e-9)
    assert moved["origin_ts"].dt.hour().to_list() == [11, 12]  # the returns into and out of the corrected hour
    # and nothing changed: nothing recomputed
    _, again = _forecast(con, corrected, NOV, tmp_path)
    assert not again.recomputed and again.origins_added == 0


def test_a_code_version_bump_retrains_to_the_same_files_and_a_forecast_code_bump_recomputes(
    feats, tmp_path, one_thread
):
    con = duckdb.connect()
    upto = feats.filter(pl.col("ts") < datetime(2025, 11, 20, tzinfo=UTC))
    first, _ = _forecast(con, upto, NOV, tmp_path)
    assert all(m.trained for m in first.values())
    again, update = _forecast(con, upto, NOV, tmp_path)
    assert not any(m.trained for m in again.values()) and not update.recomputed and update.origins_added == 0
    bumped, update = _forecast(con, upto, NOV, tmp_path, code="2")
    assert all(m.trained for m in bumped.values())
    # seeded training on the same hours gives the same weights, and a checkpoint's bytes depend only on what was
    # trained (its clock readings lie beside it): the same files, so the stored forecasts stand
    assert {k: m.sha256 for k, m in bumped.items()} == {k: m.sha256 for k, m in first.items()}
    assert not update.recomputed and update.rows_deleted == 0
    # a bump of the forecasting code recomputes the period from the same checkpoints
    ckpts = {k: m.load() for k, m in bumped.items()}
    update = fl.update_period(con, upto, "BTC", NOV, ckpts, CFG, code_version=fl.FORECAST_CODE_VERSION + "-next")
    assert update.recomputed and "versions changed" in update.reason and update.rows_deleted > 0
    stored = con.execute("SELECT DISTINCT code_version FROM forecast_log WHERE name = 'attention_lstm'").fetchall()
    assert stored == [(fl.FORECAST_CODE_VERSION + "-next",)]


def test_stored_forecasts_reproduce_the_evaluation_exactly(feats, tmp_path, one_thread):
    con = duckdb.connect()
    parts = []
    for period in (NOV, DEC):
        models, _ = _forecast(con, feats, period, tmp_path)
        # recomputed from the checkpoints, independently of what was stored
        fs = fl.compute_period(feats, {k: m.load() for k, m in models.items()}, period, CFG).forecasts
        assert fs is not None
        parts.append(replace(fs, fold=np.full(len(fs), len(parts) + 1)))
    direct = ForecastSet.concat(parts)
    pooled, periods = fl.forecast_set_from_rows(fl.load_log(con, "BTC"))
    assert periods == [NOV.key, DEC.key]
    spans, _ = fl.period_spans(con, "BTC", periods)
    a = evaluate_forecasts(direct, "", spans, {})
    b = evaluate_forecasts(pooled, "", spans, {})
    assert a.to_dict() == b.to_dict()  # every figure, to the last bit
    assert b.hours == 720 + 720 and [f.test_hours for f in b.folds] == [720, 720]
    assert set(b.returns) == {"attention_lstm", "multitask", "no_attention_lstm", "ridge_ar48", "ridge_features"}
    # the direction probabilities, the observed classes and each period's training base rates come back too
    assert set(b.probabilities) == {"multitask"} and b.probabilities["multitask"].n == 1440
    assert pooled.direction is not None and pooled.base_rates is not None
    np.testing.assert_array_equal(pooled.direction, direct.direction)
    np.testing.assert_array_equal(pooled.probabilities["multitask"], direct.probabilities["multitask"])
    assert not np.array_equal(pooled.base_rates[0], pooled.base_rates[-1])  # each period its own training rate
    assert set(b.returns["multitask"].calibration) == {80, 95}


def test_rows_round_trip_every_quantity():
    n = 5
    end = np.arange(np.datetime64("2025-01-01T00"), np.datetime64("2025-01-01T05"), np.timedelta64(1, "h"))
    rng = np.random.default_rng(0)
    fs = ForecastSet(end.astype("datetime64[us]"), np.ones(n, int), rng.normal(size=n), np.full(n, 0.1), rng.random(n))
    fs.returns["attention_lstm"] = rng.normal(size=n)
    fs.variances["attention_lstm"] = rng.random(n)
    fs.vol_var["garch_1_1"] = rng.random(n)
    fs.next_var["garch_1_1"] = rng.random(n)
    rows = fl.forecast_rows("BTC", "2025-01-01", fs, fl.ForecastVersions({"attention_lstm": "abc"}, "1", "d1"))
    assert set(rows["role"]) == {"model", "baseline", "observed"}
    assert (rows["target_ts"] - rows["origin_ts"]).unique().to_list() == [np.timedelta64(1, "h")]
    back, _ = fl.forecast_set_from_rows(rows)
    for attr in ("end_ts", "actual", "train_mean", "realised_var"):
        assert np.array_equal(getattr(back, attr), getattr(fs, attr)), attr
    for attr in ("returns", "variances", "vol_var", "next_var"):
        assert {k: v.tolist() for k, v in getattr(back, attr).items()} == {
            k: v.tolist() for k, v in getattr(fs, attr).items()
        }
    with pytest.raises(ValueError, match="backfill the forecast periods"):
        fl.forecast_set_from_rows(rows.clear())


def _with_probabilities(n: int, rng) -> ForecastSet:
    end = np.datetime64("2025-01-01T00", "us") + np.arange(n) * np.timedelta64(1, "h")
    fs = ForecastSet(end, np.ones(n, int), rng.normal(0, 0.01, n), np.full(n, 0.1), rng.random(n))
    fs.returns["multitask"] = rng.normal(0, 0.001, n)
    fs.probabilities["multitask"] = rng.dirichlet(np.ones(3), n)
    fs.direction = rng.integers(0, 3, n)
    fs.base_rates = np.tile([0.2, 0.5, 0.3], (n, 1))
    return fs


def test_rows_round_trip_the_direction_probabilities_and_an_old_log_still_loads():
    fs = _with_probabilities(40, np.random.default_rng(1))
    rows = fl.forecast_rows("BTC", "2025-01-01", fs, fl.ForecastVersions({"multitask": "abc"}, "2", "d1"))
    assert set(fl.PROBABILITY_QUANTITIES) <= set(rows.filter(pl.col("name") == "multitask")["quantity"])
    back, _ = fl.forecast_set_from_rows(rows)
    np.testing.assert_array_equal(back.probabilities["multitask"], fs.probabilities["multitask"])
    np.testing.assert_array_equal(back.direction, fs.direction)
    np.testing.assert_array_equal(back.base_rates, fs.base_rates)
    assert evaluate_forecasts(back, "", [], {}).to_dict() == (evaluate_forecasts(fs, "", [], {}).to_dict())
    # a log written before the probabilities were stored: loads, and scores no probabilities
    new = set(fl.PROBABILITY_QUANTITIES) | set(fl.BASE_RATE_QUANTITIES) | {fl.DIRECTION}
    old, _ = fl.forecast_set_from_rows(rows.filter(~pl.col("quantity").is_in(list(new))))
    assert old.direction is None and old.base_rates is None and old.probabilities == {}
    assert set(old.returns) == {"multitask"}
    ev = evaluate_forecasts(old, "", [], {})
    assert ev.probabilities == {} and "multitask" in ev.returns
    # an old period pooled with a new one: known for only some hours, so pooled without them
    later = replace(fs, end_ts=fs.end_ts + np.timedelta64(60, "D"))
    mixed = pl.concat(
        [
            rows.filter(~pl.col("quantity").is_in(list(new))),
            fl.forecast_rows("BTC", "2025-03-01", later, fl.ForecastVersions({"multitask": "abc"}, "2", "d2")),
        ]
    )
    pooled, periods = fl.forecast_set_from_rows(mixed)
    assert len(periods) == 2 and pooled.direction is None and pooled.probabilities == {}
    assert evaluate_forecasts(pooled, "", [], {}).probabilities == {}


@pytest.fixture(scope="module")
def nov_models(feats, tmp_path_factory) -> dict:
    """November's checkpoints, trained once for the module (on hours before November only, so every test below
    may change November's and December's hours without making them stale)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    con, folder = duckdb.connect(), tmp_path_factory.mktemp("nov_models")
    try:
        return {
            k: train_period_model(lambda: nullcontext(con), feats, "BTC", k, r, NOV, CFG, folder, "1", "ci").load()
            for k, r in _recipes().items()
        }
    finally:
        torch.set_num_threads(threads)


def _before(feats, day: datetime) -> pl.DataFrame:
    return feats.filter(pl.col("ts") < day)


class _Killed(RuntimeError):
    pass


class _KilledBeforePeriodRow:
    """A connection whose process dies (raises) when the period row is about to be written: after the forecast
    rows of the same update, before its `forecast_periods` row."""

    def __init__(self, con):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args):
        if sql.lstrip().startswith("INSERT INTO forecast_periods"):
            raise _Killed("killed between the forecast rows and their period row")
        return self._con.execute(sql, *args)


def _log_and_period_row(con, period: str) -> tuple[int, int | None]:
    logged = con.execute("SELECT count(DISTINCT origin_ts) FROM forecast_log WHERE period = ?", [period]).fetchone()
    row = con.execute("SELECT test_hours FROM forecast_periods WHERE period = ?", [period]).fetchone()
    return logged[0], None if row is None else row[0]


def test_a_crash_between_the_forecast_rows_and_their_period_row_leaves_both_as_they_were(feats, nov_models, tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(path)
    first = fl.update_period(con, _before(feats, datetime(2025, 11, 10, tzinfo=UTC)), "BTC", NOV, nov_models, CFG)
    assert _log_and_period_row(con, NOV.key) == (first.test_hours, first.test_hours) == (8 * 24, 8 * 24)
    later = _before(feats, datetime(2025, 11, 20, tzinfo=UTC))
    with pytest.raises(_Killed):
        fl.update_period(_KilledBeforePeriodRow(con), later, "BTC", NOV, nov_models, CFG)  # type: ignore[arg-type]
    con.close()
    con = duckdb.connect(path)  # what the restarted process finds: the log and its period row still agree
    assert _log_and_period_row(con, NOV.key) == (8 * 24, 8 * 24)
    rerun = fl.update_period(con, later, "BTC", NOV, nov_models, CFG)
    assert rerun.origins_added == 10 * 24 and not rerun.recomputed
    assert _log_and_period_row(con, NOV.key) == (18 * 24, 18 * 24)


def test_a_month_is_complete_only_once_its_last_origins_targets_land(feats, nov_models):
    con = duckdb.connect()
    at_end = fl.update_period(con, _before(feats, datetime(2025, 12, 1, tzinfo=UTC)), "BTC", NOV, nov_models, CFG)
    # November has ended, but its last 24 origins' 24-hour targets are December's first hours
    assert at_end.test_hours == at_end.expected_hours == 720 - 24
    assert not at_end.closed and not at_end.complete and at_end.waiting_for == "2025-12-01 23:00 UTC"
    short = fl.update_period(con, _before(feats, datetime(2025, 12, 1, 23, tzinfo=UTC)), "BTC", NOV, nov_models, CFG)
    assert short.test_hours == 720 - 1 and not short.complete  # one target hour still to land
    landed = fl.update_period(con, _before(feats, datetime(2025, 12, 2, tzinfo=UTC)), "BTC", NOV, nov_models, CFG)
    assert landed.origins_added == 1 and landed.test_hours == landed.expected_hours == 720
    assert landed.closed and landed.complete and landed.waiting_for == ""


def _corrected(column: str, hour: datetime, factor: float, until: datetime) -> pl.DataFrame:
    candles = generate_candles(SyntheticSpec(days=110, seed=3))
    fixed = candles.with_columns(
        pl.when(pl.col("ts") == hour).then(pl.col(column) * factor).otherwise(pl.col(column)).alias(column)
    ).with_columns(pl.max_horizontal("high", "close").alias("high"), pl.min_horizontal("low", "close").alias("low"))
    return compute_features(fixed).filter(pl.col("ts") < until)


def _stored_equals_fresh(con, feats, nov_models, attr: str, name: str) -> None:
    """The stored forecasts of November are what its models and baselines give on `feats` now."""
    fresh = fl.compute_period(feats, nov_models, NOV, CFG).forecasts
    stored, _ = fl.forecast_set_from_rows(fl.load_log(con, "BTC", [NOV.key]))
    assert fresh is not None
    np.testing.assert_array_equal(stored.end_ts, fresh.end_ts)
    values = stored.realised_var if attr == "realised_var" else getattr(stored, attr)[name]
    expected = fresh.realised_var if attr == "realised_var" else getattr(fresh, attr)[name]
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=0)


def test_a_volume_only_correction_inside_a_logged_month_recomputes_its_forecasts_from_a_day_before(feats, nov_models):
    upto = datetime(2025, 11, 20, tzinfo=UTC)
    con = duckdb.connect()
    fl.update_period(con, _before(feats, upto), "BTC", NOV, nov_models, CFG)
    before = _log(con, NOV.key)
    # the exchange corrects the volume (only) of 2025-11-10 12:00 after its hours were logged
    corrected = _corrected("volume", datetime(2025, 11, 10, 12, tzinfo=UTC), 3.0, upto)
    assert corrected["log_return"].equals(_before(feats, upto)["log_return"])  # no close moved
    update = fl.update_period(con, corrected, "BTC", NOV, nov_models, CFG)
    assert not update.recomputed and "inputs of 1 hour(s) changed" in update.reason, update.reason
    _stored_equals_fresh(con, corrected, nov_models, "returns", "multitask")
    # the origins before the day ahead of the corrected hour are untouched; from then on rewritten
    redo = datetime(2025, 11, 9, 12)
    after = _log(con, NOV.key)
    assert after.filter(pl.col("origin_ts") < redo).equals(before.filter(pl.col("origin_ts") < redo))
    rewritten = after.filter(pl.col("origin_ts") >= redo)
    assert rewritten["origin_ts"].n_unique() == before.filter(pl.col("origin_ts") >= redo)["origin_ts"].n_unique()
    assert rewritten["written_at"].min() > before["written_at"].max()  # type: ignore[operator]
    # nothing changed since: nothing recomputed
    again = fl.update_period(con, corrected, "BTC", NOV, nov_models, CFG)
    assert again.origins_added == 0 and again.rows_deleted == 0 and again.reason.endswith("stored and current")


def test_a_close_correction_in_the_day_after_a_month_recomputes_its_last_hours(feats, nov_models):
    upto = datetime(2025, 12, 3, tzinfo=UTC)
    con = duckdb.connect()
    first = fl.update_period(con, _before(feats, upto), "BTC", NOV, nov_models, CFG)
    assert first.complete
    # December's 05:00 close corrected: the realised 24-hour variance of November's origins from 30 Nov 05:00 on
    corrected = _corrected("close", datetime(2025, 12, 1, 5, tzinfo=UTC), 1.03, upto)
    update = fl.update_period(con, corrected, "BTC", NOV, nov_models, CFG)
    assert "inputs of" in update.reason and update.origins_added == 19 and update.complete, update
    _stored_equals_fresh(con, corrected, nov_models, "realised_var", "")


def test_a_forecaster_missing_rows_is_recomputed_or_named(feats, nov_models, monkeypatch):
    con = duckdb.connect()
    month = _before(feats, datetime(2025, 12, 2, tzinfo=UTC))
    fl.update_period(con, month, "BTC", NOV, nov_models, CFG)
    full, _ = fl.forecast_set_from_rows(fl.load_log(con, "BTC"))
    con.execute(
        "DELETE FROM forecast_log WHERE name = 'multitask' AND origin_ts IN "
        "(SELECT DISTINCT origin_ts FROM forecast_log ORDER BY origin_ts LIMIT 10 OFFSET 100)"
    )
    assert set(fl.missing_forecasts(con, "BTC", NOV.key)) == {"multitask"}
    update = fl.update_period(con, month, "BTC", NOV, nov_models, CFG)
    assert "10 stored origin(s) lacked forecasts of multitask (10)" in update.reason, update.reason
    assert update.origins_added == 10 and update.test_hours == 720 and fl.missing_forecasts(con, "BTC", NOV.key) == {}
    back, _ = fl.forecast_set_from_rows(fl.load_log(con, "BTC"))
    np.testing.assert_allclose(back.returns["multitask"], full.returns["multitask"], rtol=1e-6)
    # a whole forecaster gone from the month: the month is recomputed
    con.execute("DELETE FROM forecast_log WHERE name = 'garch_1_1'")
    update = fl.update_period(con, month, "BTC", NOV, nov_models, CFG)
    assert update.recomputed and "garch_1_1 stored no rows" in update.reason, update.reason
    assert "garch_1_1" in fl.forecast_set_from_rows(fl.load_log(con, "BTC"))[0].vol_var
    # a forecaster that cannot give some origins even when the month is recomputed: named, with the month
    rows_of = fl.forecast_rows

    def without_some_multitask(*args, **kwargs):
        rows = rows_of(*args, **kwargs)
        first = sorted(rows["origin_ts"].unique())[:3]
        return rows.filter(~((pl.col("name") == "multitask") & pl.col("origin_ts").is_in(first)))

    monkeypatch.setattr(fl, "forecast_rows", without_some_multitask)
    con.execute("DELETE FROM forecast_log WHERE name = 'multitask' AND origin_ts < '2025-11-02'")
    with pytest.raises(
        fl.IncompleteForecastError, match=r"BTC 2025-11: the forecaster multitask has no forecasts for 3"
    ):
        fl.update_period(con, month, "BTC", NOV, nov_models, CFG)
