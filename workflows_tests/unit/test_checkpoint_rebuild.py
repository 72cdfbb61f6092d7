"""A lost checkpoint is rebuilt to the same bytes: its clock readings live beside it, not in the hashed file."""

import json
import shutil
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timezone

import duckdb
import polars as pl
import pytest

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.ml.checkpoints import timings_path
from workflows.ml.period_models import registered, train_period_model
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.profiles import recipe_for
from workflows.serving.promotion import POINTER, load_current

CFG = PeriodConfig(train_days=40, min_train_days=30, val_days=7)
NOV = ForecastPeriod.from_key("2025-11-01")


@pytest.fixture(scope="module")
def feats():
    feats = compute_features(generate_candles(SyntheticSpec(days=80, seed=3)))
    return feats.filter(pl.col("ts") < datetime(2025, 11, 10, tzinfo=timezone.utc))


def test_a_deleted_served_checkpoint_is_rebuilt_to_the_same_file_and_serves_again(feats, tmp_path, one_thread):
    recipe = recipe_for("multitask", "ci")
    recipe = replace(recipe, train=replace(recipe.train, epochs=2))
    con = duckdb.connect()
    folder = tmp_path / "checkpoints" / "BTCUSDT"

    def period_model():
        connect = lambda: nullcontext(con)  # noqa: E731
        return train_period_model(connect, feats, "BTCUSDT", "multitask", recipe, NOV, CFG, folder, "1")

    first = period_model()
    path = folder / first.path.rsplit("/", 1)[-1]
    assert first.trained and path.is_file()
    recorded = json.loads(timings_path(path).read_text())
    assert recorded["wall_s"] > 0 and len(recorded["history"]) == 2  # the clock readings are kept, beside the file
    assert first.load().training.wall_s == recorded["wall_s"]
    (folder / POINTER).write_text(json.dumps({"path": path.name, "sha256": first.sha256}))

    path.unlink()  # lost: the pointer names a file that is gone
    with pytest.raises(FileNotFoundError, match="workflows run --symbol BTCUSDT"):
        load_current(folder)

    rebuilt = period_model()  # what `workflows run --symbol BTCUSDT` does for the period
    assert rebuilt.trained  # it did train again (the clock differs from the first training) ...
    assert (rebuilt.path, rebuilt.sha256) == (first.path, first.sha256)  # ... to the same name and bytes
    served = load_current(folder)
    assert served is not None and served.sha256 == first.sha256  # the pointer serves again, untouched


def test_a_moved_data_folder_retrains_nothing_and_a_copy_reads_its_own_checkpoints(feats, tmp_path, one_thread):
    recipe = recipe_for("multitask", "ci")
    recipe = replace(recipe, train=replace(recipe.train, epochs=1))

    def period_model(root):
        with duckdb.connect(str(root / "warehouse.duckdb")) as con:
            connect = lambda: nullcontext(con)  # noqa: E731
            folder = root / "checkpoints" / "BTCUSDT"
            return train_period_model(connect, feats, "BTCUSDT", "multitask", recipe, NOV, CFG, folder, "1")

    (tmp_path / "data").mkdir()
    first = period_model(tmp_path / "data")
    assert first.trained
    with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb")) as con:
        (stored,) = con.execute("SELECT path FROM period_models").fetchone() or ("",)
    assert stored == f"checkpoints/BTCUSDT/{first.path.rsplit('/', 1)[-1]}"  # relative to the data folder

    shutil.copytree(tmp_path / "data", tmp_path / "copy")
    (tmp_path / "data").rename(tmp_path / "moved")
    moved = period_model(tmp_path / "moved")
    assert not moved.trained and moved.path == str(tmp_path / "moved" / stored)  # found where it now lies
    with duckdb.connect(str(tmp_path / "copy" / "warehouse.duckdb")) as con:
        copy = registered(con, "BTCUSDT", NOV.key, "multitask")
    assert copy is not None and copy.path == str(tmp_path / "copy" / stored)  # its own file, not the original's
    assert copy.load().sha256 == first.sha256
