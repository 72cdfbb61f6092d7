"""A month's independent steps in parallel processes give what one process gives (issue 28, item 1).

One `forecast_period` partition run twice on the same candles: in this process (`workers` 1, what
`workflows run` does by default) and through `execute_parallel` with 2 workers (Dagster's multiprocess executor:
the period models and twins side by side, each step in its own process with one training slot). Both with one
torch thread per training (`WORKFLOWS_CPU_TRAINING_SLOTS=2`), so that the floating point is the same: the
forecast log and the attention evidence and verdicts must be equal, not merely close."""

from datetime import datetime, timezone

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from workflows.cli.periods import execute_parallel
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import ensure_schema, upsert_candles
from workflows.definitions import defs
from workflows.defs.assets_attention import PeriodAttentionConfig
from workflows.defs.assets_periods import PERIOD_KINDS, PeriodTrainingConfig
from workflows.defs.partitions import period_key
from workflows.ml.placement import CPU_SLOTS_ENV
from workflows_tests.helpers import SMALL_PROTOCOL

UTC = timezone.utc
SETTINGS = {"profile": "ci", "device": "cpu", "train_days": 25, "min_train_days": 20, "val_days": 5, "max_epochs": 1}
CANDLES = generate_candles(SyntheticSpec(days=50, seed=3, end=datetime(2025, 12, 21, tzinfo=UTC)))
KEY = period_key("BTCUSDT", "2025-12-01")


def _resources(data_dir) -> dict:
    return {"warehouse": {"config": {"data_dir": str(data_dir)}}}


def _config(data_dir) -> dg.RunConfig:
    ops: dict = {f"{k}_period_model": PeriodTrainingConfig(**SETTINGS) for k in PERIOD_KINDS}
    ops["period_attention"] = PeriodAttentionConfig(**SMALL_PROTOCOL)  # the executor is under test, not the evidence
    return dg.RunConfig(ops=ops, resources=_resources(data_dir))


def _land(data_dir, instance) -> None:
    data_dir.mkdir(parents=True)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        ensure_schema(con)
        upsert_candles(con, CANDLES, "synthetic")
    result = defs.resolve_job_def("ingest").execute_in_process(
        instance=instance,
        partition_key="BTCUSDT",
        asset_selection=[dg.AssetKey("features")],
        run_config={"resources": _resources(data_dir)},
    )
    assert result.success


def _log(data_dir) -> pl.DataFrame:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT period, origin_ts, name, quantity, value FROM forecast_log "
            "ORDER BY period, origin_ts, name, quantity"
        ).pl()


def _evidence(data_dir) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted((data_dir / "attention" / "BTCUSDT" / "periods").glob("*/*.npz")):
        with np.load(path, allow_pickle=False) as f:
            # the checkpoint names and digests differ: a checkpoint records its training's wall time
            out[path.stem] = {k: f[k] for k in f.files if k not in ("reading_text", "fingerprint")}
    return out


@pytest.mark.slow
def test_two_workers_give_the_forecast_log_and_verdicts_of_one(tmp_path, monkeypatch):
    monkeypatch.setenv(CPU_SLOTS_ENV, "2")
    one, two = tmp_path / "one", tmp_path / "two"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
        _land(one, instance)
        _land(two, instance)
        job = defs.resolve_job_def("forecast_period")
        serial = job.execute_in_process(instance=instance, partition_key=KEY, run_config=_config(one))
        parallel = execute_parallel(instance, KEY, _config(two), 2, "ref")
    assert serial.success and parallel.success
    # the parallel run really ran its steps in other processes
    assert {e.pid for e in parallel.all_events if e.is_step_success} - {e.pid for e in serial.all_events}
    log_one, log_two = _log(one), _log(two)
    assert log_one.height > 0
    assert log_one.equals(log_two)
    ev_one, ev_two = _evidence(one), _evidence(two)
    assert len(ev_one) == 6 and ev_one.keys() == ev_two.keys()  # every model kind's evidence
    for kind, arrays in ev_one.items():
        assert arrays.keys() == ev_two[kind].keys(), kind
        for name, value in arrays.items():  # the readings' numbers and flags (the verdicts) among them
            np.testing.assert_array_equal(value, ev_two[kind][name], err_msg=f"{kind} {name}")
