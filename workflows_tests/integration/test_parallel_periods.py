"""A month's independent steps in parallel processes give what one process gives (issue 28, item 1).

`workflows demo --workers 2` runs each `forecast_period` partition on Dagster's multiprocess executor (the period
models and twins side by side, each in its own process with one training slot); `--workers 1` runs every step in
this process. Both with one torch thread per training (`WORKFLOWS_CPU_TRAINING_SLOTS=2`), so that the floating
point is the same: the forecast log and the attention verdicts must be equal, not merely close."""

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from workflows.cli.commands import main
from workflows.ml.placement import CPU_SLOTS_ENV

ARGS = ["demo", "--days", "60", "--profile", "ci", "--periods", "2", "--min-train-days", "20", "--train-days", "25"]


def _run(root: Path, workers: int, monkeypatch) -> Path:
    data = root / f"workers{workers}"
    home = root / f"home{workers}"
    home.mkdir()
    monkeypatch.setenv("WORKFLOWS_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(CPU_SLOTS_ENV, "2")
    assert main([*ARGS, "--workers", str(workers)]) == 0
    return data


def _log(data: Path) -> pl.DataFrame:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT period, origin_ts, name, quantity, value FROM forecast_log "
            "ORDER BY period, origin_ts, name, quantity"
        ).pl()


def _evidence(data: Path) -> dict[str, dict[str, np.ndarray]]:
    folder = data / "attention" / "BTCUSDT" / "periods"
    out = {}
    for path in sorted(folder.glob("*/*.npz")):
        with np.load(path, allow_pickle=False) as f:
            # the checkpoint names and digests differ: a checkpoint records its training's wall time
            skip = ("reading_text", "fingerprint")
            out[f"{path.parent.name}/{path.stem}"] = {k: f[k] for k in f.files if k not in skip}
    return out


def _verdicts(data: Path) -> dict:
    analysis = json.loads((data / "reports" / "BTCUSDT" / "attention_analysis.json").read_text())
    return {name: an["verdict"] for name, an in analysis.items()}


@pytest.mark.slow
def test_two_workers_give_the_forecast_log_and_verdicts_of_one(tmp_path, monkeypatch, capsys):
    one = _run(tmp_path, 1, monkeypatch)
    two = _run(tmp_path, 2, monkeypatch)
    assert "up to 2 steps side by side" in capsys.readouterr().out
    log_one, log_two = _log(one), _log(two)
    assert log_one.height > 0 and log_one["period"].n_unique() == 2
    assert log_one.equals(log_two)
    ev_one, ev_two = _evidence(one), _evidence(two)
    assert ev_one and ev_one.keys() == ev_two.keys()
    for key, arrays in ev_one.items():
        assert arrays.keys() == ev_two[key].keys(), key
        for name, value in arrays.items():
            np.testing.assert_array_equal(value, ev_two[key][name], err_msg=f"{key} {name}")
    assert _verdicts(one) == _verdicts(two)
    assert os.environ[CPU_SLOTS_ENV] == "2"
