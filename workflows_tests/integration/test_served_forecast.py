"""`latest_forecast` through Dagster: the served row's age in the UI (metadata and the `forecast_age` check), and
a gap in the candles flagged with the hour forecasting resumes instead of an old row served as current."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import polars as pl

from workflows.data.features import WARMUP_HOURS
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import refresh_features, upsert_candles
from workflows.defs.assets_serving import latest_forecast
from workflows.defs.resources import WarehouseResource

UTC = timezone.utc


def _land(data_dir, candles: pl.DataFrame) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        upsert_candles(con, candles, "synthetic")
        refresh_features(con, "BTCUSDT")


def _serve(instance, data_dir, max_age_hours: float | None = None):
    config = {} if max_age_hours is None else {"ops": {"latest_forecast": {"config": {"max_age_hours": max_age_hours}}}}
    result = dg.materialize(
        [latest_forecast],
        partition_key="BTCUSDT",
        instance=instance,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
        run_config=config,
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    meta = {k: v.value for k, v in result.asset_materializations_for_node("latest_forecast")[-1].metadata.items()}
    return check, meta


def test_after_a_gap_the_old_forecast_is_flagged_stale_with_the_hour_forecasting_resumes(instance, data_dir):
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    restart = hour - timedelta(hours=20)  # candles stop 3 days before this hour, then 20 hours land
    before = generate_candles(SyntheticSpec(days=12, seed=1, end=restart - timedelta(days=3)))
    _land(data_dir, before)
    check, meta = _serve(instance, data_dir, max_age_hours=24 * 5)  # a generous limit: the hour is 3 days back
    assert check.passed and meta["stale"] is False and meta["made_at"] != "unknown"
    first_hour = meta["forecast_hour"]
    assert first_hour == (restart - timedelta(days=3)).isoformat()

    _land(data_dir, generate_candles(SyntheticSpec(days=1, seed=2, end=hour)).filter(pl.col("ts") >= restart))
    check, meta = _serve(instance, data_dir)
    # nothing promoted: the zero forecast needs one feature hour, which the new segment has after its warm-up
    resume = restart + timedelta(hours=WARMUP_HOURS + 1)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert meta["stale"] is True and meta["resumes_at"] == resume.isoformat()
    assert f"forecasting resumes with the hour {resume:%Y-%m-%d %H:%M} UTC" in str(meta["freshness"])
    assert meta["forecast_hour"] == first_hour  # the row served is still the old one, and says so
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute("SELECT ts, resumes_at FROM forecasts WHERE symbol = 'BTCUSDT'").fetchone()
    assert row == (
        (restart - timedelta(days=3)).replace(tzinfo=None),
        resume.replace(tzinfo=None),
    )
