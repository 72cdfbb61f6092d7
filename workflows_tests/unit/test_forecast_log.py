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
    changed = update.reason.startswith("versions changed") or "candles changed" in update.reason
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


def test_a_candle_corrected_inside_a_logged_period_recomputes_that_period_only(tmp_path, one_thread):
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
    assert update.recomputed and "candles changed" in update.reason and update.rows_deleted == before.height
    actual = _log(con, NOV.key).filter((pl.col("name") == "observed") & (pl.col("quantity") == "actual"))
    old = before.filter((pl.col("name") == "observed") & (pl.col("quantity") == "actual"))
    moved = actual.join(old, on="origin_ts").filter((pl.col("value") - pl.col("value_right")).abs() > 1e-9)
    assert moved["origin_ts"].dt.hour().to_list() == [11, 12]  # the returns into and out of the corrected hour
    # and nothing changed: nothing recomputed
    _, again = _forecast(con, corrected, NOV, tmp_path)
    assert not again.recomputed and again.origins_added == 0


def test_a_code_version_bump_retrains_and_recomputes_the_period(feats, tmp_path, one_thread):
    con = duckdb.connect()
    upto = feats.filter(pl.col("ts") < datetime(2025, 11, 20, tzinfo=UTC))
    first, _ = _forecast(con, upto, NOV, tmp_path)
    assert all(m.trained for m in first.values())
    again, update = _forecast(con, upto, NOV, tmp_path)
    assert not any(m.trained for m in again.values()) and not update.recomputed and update.origins_added == 0
    bumped, update = _forecast(con, upto, NOV, tmp_path, code="2")
    assert all(m.trained for m in bumped.values())
    assert update.recomputed and "versions changed" in update.reason and update.rows_deleted > 0
    stored = con.execute("SELECT DISTINCT model_version FROM forecast_log WHERE name = 'attention_lstm'").fetchall()
    assert stored == [(bumped["attention_lstm"].sha256,)]


def test_stored_forecasts_reproduce_the_evaluation_exactly(feats, tmp_path, one_thread):
    con = duckdb.connect()
    parts = []
    for period in (NOV, DEC):
        models, _ = _forecast(con, feats, period, tmp_path)
        # recomputed from the checkpoints, independently of what was stored
        fs, _, _, _ = fl.period_forecasts(feats, {k: m.load() for k, m in models.items()}, period, CFG)
        assert fs is not None
        parts.append(replace(fs, fold=np.full(len(fs), len(parts) + 1)))
    direct = ForecastSet.concat(parts)
    pooled, periods = fl.forecast_set_from_rows(fl.load_log(con, "BTC"))
    assert periods == [NOV.key, DEC.key]
    spans, _ = fl.period_spans(con, "BTC", periods)
    a = evaluate_forecasts(direct, "walk_forward", "", spans, {})
    b = evaluate_forecasts(pooled, "walk_forward", "", spans, {})
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
    assert evaluate_forecasts(back, "walk_forward", "", [], {}).to_dict() == (
        evaluate_forecasts(fs, "walk_forward", "", [], {}).to_dict()
    )
    # a log written before the probabilities were stored: loads, and scores no probabilities
    new = set(fl.PROBABILITY_QUANTITIES) | set(fl.BASE_RATE_QUANTITIES) | {fl.DIRECTION}
    old, _ = fl.forecast_set_from_rows(rows.filter(~pl.col("quantity").is_in(list(new))))
    assert old.direction is None and old.base_rates is None and old.probabilities == {}
    assert set(old.returns) == {"multitask"}
    ev = evaluate_forecasts(old, "walk_forward", "", [], {})
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
    assert evaluate_forecasts(pooled, "walk_forward", "", [], {}).probabilities == {}
