"""The forecast log through Dagster: model and forecast assets partitioned by symbol x month.

Candles are landed hour range by hour range (the synthetic generator's candles, cut), and the
`forecast_period` job runs one (symbol, month) partition at a time, as a backfill does."""

from datetime import datetime, timezone
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import ensure_schema, upsert_candles
from workflows.definitions import defs
from workflows.defs.assets_models import MODEL_CODE_VERSION
from workflows.defs.assets_periods import PERIOD_KINDS
from workflows.defs.partitions import period_key
from workflows.evaluation import forecast_log as fl
from workflows.ml.periods import ForecastPeriod, PeriodConfig, training_bounds
from workflows.ml.profiles import model_kinds
from workflows.ml.windows import WindowSpec
from workflows_tests.helpers import SMALL_PROTOCOL

UTC = timezone.utc
SETTINGS = {"profile": "ci", "device": "cpu", "train_days": 25, "min_train_days": 20, "val_days": 5, "max_epochs": 1}
CFG = PeriodConfig(train_days=25, min_train_days=20, val_days=5)
# 2025-10-24 .. 2026-01-02 (exclusive): December complete, then a day of January
CANDLES = generate_candles(SyntheticSpec(days=70, seed=3, end=datetime(2026, 1, 2, tzinfo=UTC)))


def _land(data_dir, instance, until: datetime) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        ensure_schema(con)
        upsert_candles(con, CANDLES.filter(pl.col("ts") < until), "synthetic")
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    result = defs.resolve_job_def("ingest").execute_in_process(
        instance=instance, partition_key="BTCUSDT", asset_selection=[dg.AssetKey("features")], run_config=_res(data_dir)
    )
    assert result.success


def _res(data_dir) -> dict:
    return {"resources": {"warehouse": {"config": {"data_dir": str(data_dir)}}}}


def _period(data_dir, instance, period: str):
    ops = {f"{k}_period_model": {"config": SETTINGS} for k in PERIOD_KINDS}
    # every window deleted from (the stride stays 1, so a grown month appends), the fewest draws and resamples
    ops["period_attention"] = {"config": {**SMALL_PROTOCOL, "deletion_windows": 1_000}}
    result = defs.resolve_job_def("forecast_period").execute_in_process(
        instance=instance,
        partition_key=period_key("BTCUSDT", period),
        run_config={"ops": ops} | _res(data_dir),
    )
    assert result.success
    trained = sum(
        result.asset_materializations_for_node(f"{k}_period_model")[-1].metadata["trained"].value is True
        for k in PERIOD_KINDS
    )
    forecasts: dict[str, Any] = {
        k: v.value for k, v in result.asset_materializations_for_node("forecasts")[-1].metadata.items()
    }
    attention = result.asset_materializations_for_node("period_attention")[-1].metadata
    forecasts["attention"] = {k: v.value for k, v in attention.items() if k != "verdicts"}
    return result, trained, forecasts


def _rows(data_dir, period: str) -> pl.DataFrame:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT origin_ts, name, quantity, value, written_at FROM forecast_log WHERE period = ? "
            "ORDER BY origin_ts, name, quantity",
            [period],
        ).pl()


@pytest.mark.slow
def test_a_day_trains_nothing_a_new_month_trains_once_and_the_evaluation_pools_the_log(instance, data_dir, one_thread):
    _land(data_dir, instance, datetime(2025, 12, 20, tzinfo=UTC))
    _, trained, added = _period(data_dir, instance, "2025-12-01")
    assert trained == len(PERIOD_KINDS)  # 6 model kinds and 3 twins, each trained once
    assert added["hours_added"] == 19 * 24 - 24  # the origins whose 24 target hours have arrived
    dec_rows = _rows(data_dir, "2025-12-01")
    # the month's attention, read from its own models on its logged hours; one control per architecture
    first = added["attention"]
    assert first["analysed"] and first["windows"] == 19 * 24 - 24 and first["controls_trained"] >= 4
    evidence = data_dir / "attention" / "BTCUSDT" / "periods" / "2025-12-01"
    assert sorted(p.stem for p in evidence.glob("*.npz")) == sorted(model_kinds())

    # one more day of candles inside December: nothing trains, that day's forecasts are added
    _land(data_dir, instance, datetime(2025, 12, 21, tzinfo=UTC))
    _, trained, added = _period(data_dir, instance, "2025-12-01")
    assert trained == 0 and added["hours_added"] == 24 and added["rows_replaced"] == 0 and not added["recomputed"]
    assert added["complete"] is False and added["waiting_for"] == "2026-01-01 23:00 UTC"
    # the attention of the grown month is read again; its controls are not retrained
    again = added["attention"]
    assert again["windows"] == 19 * 24 and again["controls_trained"] == 0 and not again["reused"]
    assert again["controls_reused"] == first["controls_trained"]
    after = _rows(data_dir, "2025-12-01")
    assert after.height > dec_rows.height
    assert after.filter(pl.col("origin_ts") <= dec_rows["origin_ts"].max()).equals(dec_rows)  # untouched

    # into January: its models train once (warm-started from December's); a rerun trains nothing
    _land(data_dir, instance, datetime(2026, 1, 2, tzinfo=UTC))
    _, trained, added = _period(data_dir, instance, "2025-12-01")
    assert trained == 0 and added["attention"]["windows"] == 744 and not added["attention"]["reused"]
    # every December hour logged once January's first day landed: the month is complete, the schedule lets it be
    assert added["hours_stored"] == added["hours_expected"] == 744 and added["complete"] is True
    # a rerun on the same checkpoints and hours (a resumed backfill) reuses the month's evidence untouched
    stamps = {p.name: p.stat().st_mtime_ns for p in evidence.glob("*.npz")}
    _, trained, added = _period(data_dir, instance, "2025-12-01")
    assert trained == 0 and added["attention"]["reused"] and added["attention"]["controls_trained"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in evidence.glob("*.npz")} == stamps
    jan, trained, added = _period(data_dir, instance, "2026-01-01")
    assert trained == len(PERIOD_KINDS) and added["hours_added"] == 0  # no January hour has its targets yet
    assert not added["attention"]["analysed"]  # nothing to read attention on yet
    assert _period(data_dir, instance, "2026-01-01")[1] == 0
    meta = jan.asset_materializations_for_node("multitask_period_model")[-1].metadata
    assert meta["warm_started_from"].value != "scratch"
    # the newest period's model has seen every hour before January, less validation and embargo
    ckpt = jan.output_for_node("multitask_period_model").load()
    b = training_bounds(ForecastPeriod.from_key("2026-01-01"), WindowSpec(), CFG)
    assert ckpt.training.train_end_ts == b.iso(b.train_hi - 1) == "2025-12-20T23:00:00+00:00"
    # its last validation target: 24 hours after the last validation window, before January's embargo ends
    assert ckpt.training.last_target_ts == b.iso(b.val_hi - 1 + 24) == "2025-12-29T23:00:00+00:00"

    # the code version is recorded per period: a bump of MODEL_CODE_VERSION leaves every period behind it
    for period in ("2025-12-01", "2026-01-01"):
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("attention_lstm_period_model"),
                asset_partitions=[str(period_key("BTCUSDT", period))],
            ),
            limit=1,
        ).records[0]
        assert record.asset_materialization.tags["dagster/code_version"] == MODEL_CODE_VERSION

    # the evaluation pools the stored forecasts and trains nothing: its figures are the log's, exactly
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        ev = fl.pooled_evaluation(con, "BTCUSDT")
        fs, periods = fl.forecast_set_from_rows(fl.load_log(con, "BTCUSDT"))
    assert ev is not None and periods == ["2025-12-01"]  # January has no judged hour yet
    assert ev.hours == len(fs) == 744
    zero = fs.actual**2
    own = (fs.returns["attention_lstm"] - fs.actual) ** 2
    assert ev.returns["attention_lstm"].skill_vs_zero == 1 - np.mean(own) / np.mean(zero)

    # a volume-only correction inside December: its forecasts from a day before the hour and the month's attention
    # evidence (fingerprinted on the same inputs) are both recomputed, so the evaluation and the attention agree
    hour = datetime(2025, 12, 15, 12, tzinfo=UTC)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        upsert_candles(con, CANDLES.filter(pl.col("ts") == hour).with_columns(pl.col("volume") * 3), "correction")
    result = defs.resolve_job_def("ingest").execute_in_process(
        instance=instance, partition_key="BTCUSDT", asset_selection=[dg.AssetKey("features")], run_config=_res(data_dir)
    )
    assert result.success
    _, trained, added = _period(data_dir, instance, "2025-12-01")
    assert trained == 0 and not added["recomputed"] and "inputs of" in str(added["reason"]), added["reason"]
    assert added["hours_stored"] == 744 and added["complete"] is True
    assert not added["attention"]["reused"] and added["attention"]["windows"] == 744
