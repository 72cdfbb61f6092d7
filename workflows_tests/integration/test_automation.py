import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.definitions import defs
from workflows.defs.assets_data import candles, features
from workflows.defs.automation import (
    MAX_FILES_PER_RUN,
    daily_forecasts,
    daily_report,
    hourly_exchange_ingest,
    incoming_files,
)
from workflows.defs.resources import WarehouseResource


def drop_file(folder, name, symbol="BTCUSDT", days=3, seed=0, age_s=60.0):
    folder.mkdir(parents=True, exist_ok=True)
    frame = generate_candles(SyntheticSpec(symbol=symbol, days=days, seed=seed))
    path = folder / name
    frame.drop("symbol").rename({"ts": "timestamp"}).write_csv(path)
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


@dataclass
class Tick:
    run_requests: list[dg.RunRequest]
    dynamic_partitions_requests: list
    cursor: str | None


def tick(instance, data_dir, cursor=None) -> Tick:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": WarehouseResource(data_dir=str(data_dir))}
    )
    result = incoming_files(context)
    assert isinstance(result, dg.SensorResult)
    return Tick(list(result.run_requests or []), list(result.dynamic_partitions_requests or []), result.cursor)


def test_one_new_file_one_run_then_none(instance, data_dir):
    drop_file(data_dir / "incoming", "BTCUSDT-1h-2025-12.csv")
    first = tick(instance, data_dir)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.partition_key == "BTCUSDT"
    assert request.run_config["ops"]["candles"]["config"]["files"][0].endswith("BTCUSDT-1h-2025-12.csv")
    assert [r.partitions_def_name for r in first.dynamic_partitions_requests] == ["symbols"]
    second = tick(instance, data_dir, cursor=first.cursor)
    assert second.run_requests == []
    # the same file rewritten (new size/mtime) is a new version: one more run
    drop_file(data_dir / "incoming", "BTCUSDT-1h-2025-12.csv", days=4, age_s=30)
    third = tick(instance, data_dir, cursor=second.cursor)
    assert len(third.run_requests) == 1 and third.run_requests[0].run_key != request.run_key


def test_many_files_are_batched_in_arrival_order(instance, data_dir):
    n = 2 * MAX_FILES_PER_RUN + 5
    for i in range(n):
        drop_file(data_dir / "incoming", f"BTCUSDT-part{i:03d}.csv", days=1, seed=i, age_s=1000 - i)
    result = tick(instance, data_dir)
    sizes = [len(r.run_config["ops"]["candles"]["config"]["files"]) for r in result.run_requests]
    assert sizes == [MAX_FILES_PER_RUN, MAX_FILES_PER_RUN, 5]
    first_batch = result.run_requests[0].run_config["ops"]["candles"]["config"]["files"]
    assert first_batch[0].endswith("part000.csv") and first_batch[-1].endswith(f"part{MAX_FILES_PER_RUN - 1:03d}.csv")


def test_unsafe_unfinished_and_unreadable_files(instance, data_dir, tmp_path):
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    outside = tmp_path / "secret.csv"
    outside.write_text("x")
    os.symlink(outside, incoming / "link.csv")
    drop_file(incoming, "ETHUSDT-writing.csv", symbol="ETHUSDT", age_s=0)  # just written
    (incoming / "garbage.csv").write_bytes(b"\x00\x01")
    os.utime(incoming / "garbage.csv", (time.time() - 60, time.time() - 60))
    result = tick(instance, data_dir)
    assert result.run_requests == []  # link refused, fresh file waits, garbage quarantined
    assert (incoming / "link.csv").is_symlink() and outside.read_text() == "x"
    assert (data_dir / "quarantine" / "garbage.csv.reason").exists()
    assert (incoming / "ETHUSDT-writing.csv").exists()


def test_sensor_run_lands_and_archives_the_file(instance, data_dir):
    path = drop_file(data_dir / "incoming", "BTCUSDT-1h.csv")
    request = tick(instance, data_dir).run_requests[0]
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    result = dg.materialize(
        [candles],
        partition_key="BTCUSDT",
        instance=instance,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        run_config=request.run_config,
    )
    assert result.success
    assert not path.exists() and (data_dir / "processed" / "BTCUSDT-1h.csv").exists()


def test_automation_marks_exactly_the_stale_assets(instance, data_dir):
    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir))}
    instance.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
    for symbol in ("BTCUSDT", "ETHUSDT"):
        dg.materialize(
            [candles, features],
            partition_key=symbol,
            instance=instance,
            resources=resources,
            run_config={"ops": {"candles": {"config": {"days": 5}}}},
        )
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0  # everything that can run is up to date
    # a new file lands for BTCUSDT (what the sensor's run does)
    dg.materialize(
        [candles],
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        run_config={"ops": {"candles": {"config": {"days": 6}}}},
    )
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {
        (key.to_user_string(), pk)
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        for pk in second.get_requested_partitions(key)
    }
    assert requested == {("features", "BTCUSDT")}
    assert second.total_requested == 1
    dg.materialize([features], partition_key="BTCUSDT", instance=instance, resources=resources)
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert third.total_requested == 0


def test_daily_report_schedule_requests_one_run_per_symbol(instance):
    instance.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 27, 2, tzinfo=timezone.utc)
    )
    requests = daily_report(context)
    assert isinstance(requests, list)
    assert sorted(str(r.partition_key) for r in requests) == ["BTCUSDT", "ETHUSDT"]
    assert daily_report.cron_schedule == "0 2 * * *" and daily_report.execution_timezone == "UTC"
    assert daily_report.job_name == "refresh_report"
    assert hourly_exchange_ingest.default_status == dg.DefaultScheduleStatus.STOPPED


def test_daily_forecasts_touch_only_the_current_month_of_each_symbol(instance):
    instance.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 27, 1, 30, tzinfo=timezone.utc)
    )
    requests = daily_forecasts(context)
    assert isinstance(requests, list) and daily_forecasts.job_name == "forecast_period"
    assert sorted(str(r.partition_key) for r in requests) == ["2026-11-01|BTCUSDT", "2026-11-01|ETHUSDT"]
    first_of_month = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 12, 1, 1, 30, tzinfo=timezone.utc)
    )
    new_month = daily_forecasts(first_of_month)
    assert isinstance(new_month, list) and {str(r.partition_key)[:10] for r in new_month} == {"2026-12-01"}
    with dg.instance_for_test() as nothing:
        empty = dg.build_schedule_context(instance=nothing, scheduled_execution_time=datetime(2026, 11, 27, 1, 30))
        assert isinstance(daily_forecasts(empty), dg.SkipReason)


def test_daily_forecasts_finish_the_previous_month_until_its_forecasts_are_complete(instance):
    """December's last origins need January's first day for their targets: the schedule asks for December again
    each day until its newest `forecasts` materialization says it is complete (744 of 744 hours)."""
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    december = "2025-12-01|BTCUSDT"

    def requested(day: int) -> list[str]:
        at = datetime(2026, 1, day, 1, 30, tzinfo=timezone.utc)
        requests = daily_forecasts(dg.build_schedule_context(instance=instance, scheduled_execution_time=at))
        assert isinstance(requests, list)
        return sorted(str(r.partition_key) for r in requests)

    def forecasts_of_december(**metadata) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization("forecasts", partition=december, metadata=metadata))

    assert requested(1) == ["2026-01-01|BTCUSDT"]  # December never logged: backfilling it is `workflows run`'s
    forecasts_of_december(hours_stored=720, complete=False, waiting_for="2026-01-01 23:00 UTC")
    assert requested(1) == [december, "2026-01-01|BTCUSDT"]
    forecasts_of_december(hours_stored=743, complete=False)  # one target hour had not landed by the run
    assert requested(2) == [december, "2026-01-01|BTCUSDT"]
    forecasts_of_december(hours_stored=744, complete=True)
    assert requested(3) == ["2026-01-01|BTCUSDT"]

    def features_rebuilt_from(hour: str) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("features", partition="BTCUSDT", metadata={"rebuilt_from": hour})
        )

    features_rebuilt_from("2026-01-02T00:00:00+00:00")  # a correction after December's last target: not December's
    assert requested(3) == ["2026-01-01|BTCUSDT"]
    features_rebuilt_from("2026-01-01T05:00:00+00:00")  # a close December's last origins' targets read: recheck it
    assert requested(3) == [december, "2026-01-01|BTCUSDT"]
    forecasts_of_december(hours_stored=744, complete=True)  # its last hours recomputed
    assert requested(4) == ["2026-01-01|BTCUSDT"]
    forecasts_of_december(hours_stored=744)  # a materialization from before completeness was recorded
    assert requested(3) == [december, "2026-01-01|BTCUSDT"]


def test_definitions_carry_sensors_schedules_and_automation():
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) >= {"incoming_files", "automation"}
    assert sensors["automation"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["incoming_files"].default_status == dg.DefaultSensorStatus.RUNNING
    assert {s.name for s in defs.schedules} == {"daily_report", "daily_forecasts", "hourly_exchange_ingest"}
    graph = defs.resolve_asset_graph()
    for key in ("features", "evaluation", "attention_tensors", "attention_analysis", "report", "latest_forecast"):
        assert graph.get(dg.AssetKey(key)).automation_condition is not None, key


def test_features_wait_for_passing_candle_checks(instance, data_dir, tmp_path):
    """A landing whose blocking check fails does not make features stale for automation."""
    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir))}
    instance.add_dynamic_partitions("symbols", ["HOLEUSDT"])
    good = tmp_path / "HOLEUSDT-a.csv"
    good.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "\n".join(f"{1704067200 + 3600 * h},100,101,99,100.5,10" for h in range(60))
        + "\n"
    )
    dg.materialize(
        [candles, features],
        partition_key="HOLEUSDT",
        instance=instance,
        resources=resources,
        run_config={"ops": {"candles": {"config": {"source": "files", "files": [str(good)]}}}},
    )
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0
    holey = tmp_path / "HOLEUSDT-b.csv"  # 60 hours more after a 600-hour hole: the missing ratio blocks
    holey.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "\n".join(f"{1704067200 + 3600 * h},100,101,99,100.5,10" for h in range(660, 720))
        + "\n"
    )
    result = dg.materialize(
        [candles],
        partition_key="HOLEUSDT",
        instance=instance,
        resources=resources,
        run_config={"ops": {"candles": {"config": {"source": "files", "files": [str(holey)]}}}},
        raise_on_error=False,
    )
    assert not result.success
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert second.get_requested_partitions(dg.AssetKey("features")) == set()


def _nested_parquet(path):
    import polars as pl

    pl.DataFrame(
        {"timestamp": [1704067200], "open": [[1.0]], "high": [1.0], "low": [1.0], "close": [1.0]}
    ).write_parquet(path)
    os.utime(path, (time.time() - 60, time.time() - 60))


def test_one_unreadable_file_never_blocks_the_good_one_beside_it(instance, data_dir):
    """A nested Parquet file used to raise past the sensor on every tick; now it is quarantined with its reason."""
    incoming = data_dir / "incoming"
    drop_file(incoming, "BTCUSDT-good.csv")
    _nested_parquet(incoming / "BTCUSDT-nested.parquet")
    result = tick(instance, data_dir)
    assert [r.run_config["ops"]["candles"]["config"]["files"] for r in result.run_requests] == [
        [str(incoming / "BTCUSDT-good.csv")]
    ]
    reason = (data_dir / "quarantine" / "BTCUSDT-nested.parquet.reason").read_text()
    assert "nested columns: open (List(Float64))" in reason


def test_a_run_quarantines_its_bad_file_and_lands_the_rest(instance, data_dir):
    incoming = data_dir / "incoming"
    good = drop_file(incoming, "BTCUSDT-good.csv")
    _nested_parquet(incoming / "BTCUSDT-nested.parquet")
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    files = [str(incoming / "BTCUSDT-nested.parquet"), str(good)]
    result = dg.materialize(
        [candles],
        partition_key="BTCUSDT",
        instance=instance,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        run_config={"ops": {"candles": {"config": {"source": "files", "files": files, "archive": True}}}},
    )
    assert result.success
    assert result.asset_materializations_for_node("candles")[0].metadata["rows_added"].value == 72
    assert (data_dir / "processed" / "BTCUSDT-good.csv").exists()
    assert (data_dir / "quarantine" / "BTCUSDT-nested.parquet.reason").exists()


def test_files_a_run_would_move_must_lie_in_incoming(instance, data_dir, tmp_path):
    elsewhere = drop_file(tmp_path / "home", "BTCUSDT-mine.csv")
    link = data_dir / "incoming" / "BTCUSDT-link.csv"
    link.parent.mkdir(parents=True)
    os.symlink(elsewhere, link)
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    for name, rule in ((elsewhere, "must lie directly in"), (link, "symbolic links are not followed")):
        result = dg.materialize(
            [candles],
            partition_key="BTCUSDT",
            instance=instance,
            resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
            run_config={"ops": {"candles": {"config": {"source": "files", "files": [str(name)], "archive": True}}}},
            raise_on_error=False,
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert failure.step_failure_data is not None and failure.step_failure_data.error is not None
        assert rule in failure.step_failure_data.error.message
    assert elsewhere.exists() and link.is_symlink()  # nothing was moved


def test_a_traversal_partition_key_is_refused_before_any_path_is_built(instance, data_dir, tmp_path):
    from workflows.defs.assets_serving import latest_forecast

    key = "../../outside"
    instance.add_dynamic_partitions("symbols", [key])
    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir))}
    for asset in (candles, latest_forecast):  # latest_forecast joins checkpoints/<symbol> first thing
        result = dg.materialize(
            [asset], partition_key=key, instance=instance, resources=resources, raise_on_error=False
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert failure.step_failure_data is not None and failure.step_failure_data.error is not None
        assert "partition key refused: '../../outside' is not a symbol" in failure.step_failure_data.error.message
    assert not (data_dir / "checkpoints").exists() and not (data_dir.parent.parent / "outside").exists()


def test_every_asset_reads_its_symbol_through_the_one_rule():
    """No asset module reads `context.partition_key` itself: they all go through `partition_symbol`. (The IO
    manager in resources.py reads it too, for any partitioned output, and percent-quotes it into one file name.)"""
    import workflows.defs as defs_package

    folder = Path(defs_package.__file__).parent
    readers = sorted(p.name for p in folder.glob("*.py") if "context.partition_key" in p.read_text())
    assert readers == ["partitions.py", "resources.py"]
    assert "quote(partition" in (folder / "resources.py").read_text()
