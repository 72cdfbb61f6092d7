from typing import Any

import dagster as dg
import duckdb
import pytest

from workflows.data.features import WARMUP_HOURS
from workflows.defs.assets_data import candles, features
from workflows.defs.resources import WarehouseResource
from workflows_tests.helpers import BTC_FILE, needs_shared


def run(instance, data_dir, symbol, config, raise_on_error=True):
    instance.add_dynamic_partitions("symbols", [symbol])
    return dg.materialize(
        [candles, features],
        partition_key=symbol,
        instance=instance,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        run_config={"ops": {"candles": {"config": config}}},
        raise_on_error=raise_on_error,
    )


def meta(result, key) -> dict[str, Any]:
    return {k: v.value for k, v in result.asset_materializations_for_node(key)[-1].metadata.items()}


def checks(result):
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_synthetic_chain_and_idempotent_rerun(instance, data_dir):
    first = run(instance, data_dir, "BTCUSDT", {"source": "synthetic", "days": 20})
    assert first.success
    assert meta(first, "candles")["rows_added"] == 480
    assert meta(first, "features")["feature_rows"] == 480 - WARMUP_HOURS
    assert all(checks(first).values()) and len(checks(first)) == 6
    assert "SYNTHETIC" in meta(first, "candles")["notes"]
    version = first.asset_materializations_for_node("candles")[-1].tags["dagster/data_version"]
    second = run(instance, data_dir, "BTCUSDT", {"source": "synthetic", "days": 20})
    assert meta(second, "candles")["rows_added"] == 0
    assert meta(second, "candles")["rows_unchanged"] == 480
    again = second.asset_materializations_for_node("candles")[-1].tags["dagster/data_version"]
    assert version == again  # identical content, identical version


def test_symbols_do_not_touch_each_other(instance, data_dir):
    run(instance, data_dir, "BTCUSDT", {"source": "synthetic", "days": 10, "seed": 1})
    run(instance, data_dir, "ETHUSDT", {"source": "synthetic", "days": 12, "seed": 2})
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        counts = dict(con.execute("SELECT symbol, count(*) FROM features GROUP BY symbol").fetchall())
    assert counts == {"BTCUSDT": 240 - WARMUP_HOURS, "ETHUSDT": 288 - WARMUP_HOURS}


@needs_shared
@pytest.mark.shared_data
def test_real_file_twice_adds_nothing(instance, data_dir):
    config = {"source": "files", "files": [str(BTC_FILE)]}
    first = run(instance, data_dir, "BTCUSDT", config)
    m = meta(first, "candles")
    assert (m["rows_added"], m["rows_rejected"]) == (33_412, 2_650)
    assert m["missing_hours"] == 16
    second = run(instance, data_dir, "BTCUSDT", config)
    assert meta(second, "candles")["rows_added"] == 0
    assert meta(second, "candles")["rows_updated"] == 0
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM candles").fetchone()[0] == 33_412
        assert con.execute("SELECT count(*) FROM candles_rejected").fetchone()[0] == 2_650
        file, line, reason = con.execute(
            "SELECT file, line, reason FROM candles_rejected WHERE reason LIKE 'implausible%'"
        ).fetchall()[0]
    assert file == BTC_FILE.name and line == 36_063 and "implausible hourly range" in reason


def test_blocking_check_stops_features(instance, data_dir, tmp_path):
    # 10 hours, a 100-hour hole, 10 hours: 83% of the span missing blocks downstream.
    hours = list(range(10)) + list(range(110, 120))
    rows = "\n".join(f"{1704067200 + 3600 * h},{100 + h},{101 + h},{99 + h},{100.5 + h},10" for h in hours)
    path = tmp_path / "HOLEUSDT.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + rows + "\n")
    result = run(instance, data_dir, "HOLEUSDT", {"source": "files", "files": [str(path)]}, raise_on_error=False)
    assert not result.success
    assert checks(result)["missing_hour_ratio"] is False
    assert not result.asset_materializations_for_node("features")


def test_naive_times_are_reported_in_metadata(instance, data_dir, tmp_path):
    path = tmp_path / "SOLUSDT.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "\n".join(f"2024-01-01 {h:02d}:00:00,10,11,9,10.5,5" for h in range(24))
        + "\n"
    )
    result = run(instance, data_dir, "SOLUSDT", {"source": "files", "files": [str(path)]})
    assert "24 timestamps had no UTC offset and were taken as UTC" in meta(result, "candles")["notes"]
