"""The I/O manager stores typed results as JSON records under a stable type name, never pickles,
and hands them back typed to downstream assets."""

import json

import dagster as dg
import numpy as np
import pytest

from workflows.defs.resources import RecordsIOManager, WarehouseResource
from workflows.evaluation.evidence import Comparison, Evaluation, return_metrics
from workflows.records import RecordError
from workflows.stats.significance import dm_test


def _evaluation(note: str) -> Evaluation:
    rng = np.random.default_rng(1)
    actual = rng.normal(0, 0.01, 200)
    return Evaluation(
        note=note,
        hours=200,
        test_start="2024-01-01",
        test_end="2024-01-09",
        returns={"attention_lstm": return_metrics(actual * 0.2, actual, 0.0)},
        volatility={},
        family=[
            Comparison("vs zero", "attention_lstm", "zero", "MSE", 1, 0.01, dm_test(rng.normal(0, 1, 200)), p_holm=0.05)
        ],
        folds=[],
        config={},
    )


parts = dg.StaticPartitionsDefinition(["BTCUSDT", "odd/../key"])


@dg.asset(partitions_def=parts)
def evaluation_like(context: dg.AssetExecutionContext) -> Evaluation:
    return _evaluation(context.partition_key)


@dg.asset(partitions_def=parts)
def by_model(context: dg.AssetExecutionContext) -> dict:
    return {"a": _evaluation("a"), "b": _evaluation("b")}


@dg.asset(partitions_def=parts)
def plain(context: dg.AssetExecutionContext) -> dict:
    return {"path": "checkpoints/x.pt", "sha256": "ab", "history_days": None}


@dg.asset(partitions_def=parts)
def reader(context: dg.AssetExecutionContext, evaluation_like: Evaluation, by_model: dict, plain: dict) -> None:
    assert isinstance(evaluation_like, Evaluation) and evaluation_like.note == context.partition_key
    assert evaluation_like == _evaluation(context.partition_key)
    assert {k: type(v) for k, v in by_model.items()} == {"a": Evaluation, "b": Evaluation}
    assert plain == {"path": "checkpoints/x.pt", "sha256": "ab", "history_days": None}


def _resources(data_dir):
    warehouse = WarehouseResource(data_dir=str(data_dir))
    return {"warehouse": warehouse, "io_manager": RecordsIOManager(warehouse=warehouse)}


@pytest.mark.parametrize("key", ["BTCUSDT", "odd/../key"])
def test_results_are_json_records_read_back_typed(data_dir, instance, key):
    result = dg.materialize(
        [evaluation_like, by_model, plain, reader], partition_key=key, resources=_resources(data_dir), instance=instance
    )
    assert result.success
    stored = sorted((data_dir / "outputs").rglob("*.json"))
    assert len(stored) == 3 and all(p.parent.parent == data_dir / "outputs" for p in stored)  # no traversal
    records = {p.parent.name: json.loads(p.read_text()) for p in stored}
    assert records["evaluation_like"]["type"] == "Evaluation" and records["by_model"]["of"] == "Evaluation"
    assert records["plain"]["type"] == "json"
    assert all("workflows." not in p.read_text() for p in stored), "a record must not name a module"


def test_an_output_with_no_json_form_fails_its_step_naming_the_field(data_dir, instance):
    @dg.asset
    def unstorable() -> dict:
        return {"model": object()}

    with pytest.raises(RecordError, match=r"unstorable\[.model.\]: object has no JSON record form"):
        dg.materialize([unstorable], resources=_resources(data_dir), instance=instance)


@dg.asset
def model_ref(warehouse: WarehouseResource) -> dict:
    return {"path": str(warehouse.paths().checkpoints / "BTCUSDT" / "multitask-x.pt"), "sha256": "ab"}


@dg.asset
def uses_ref(context: dg.AssetExecutionContext, warehouse: WarehouseResource, model_ref: dict) -> None:
    assert model_ref["path"] == str(warehouse.paths().checkpoints / "BTCUSDT" / "multitask-x.pt")


def test_paths_are_stored_relative_and_a_moved_data_folder_reads_its_own(data_dir, instance, tmp_path):
    assert dg.materialize([model_ref, uses_ref], resources=_resources(data_dir), instance=instance).success
    stored = data_dir / "outputs" / "model_ref" / "__unpartitioned__.json"
    assert json.loads(stored.read_text())["value"]["path"] == "${data}/checkpoints/BTCUSDT/multitask-x.pt"
    moved = tmp_path / "elsewhere" / "data"
    moved.parent.mkdir()
    data_dir.rename(moved)
    # the downstream asset alone, in the moved folder: it reads the path under the folder it runs in
    result = dg.materialize([model_ref, uses_ref], selection=[uses_ref], resources=_resources(moved), instance=instance)
    assert result.success


def test_a_truncated_stored_output_names_the_file_and_the_remedy(data_dir, instance):
    assert dg.materialize([model_ref, uses_ref], resources=_resources(data_dir), instance=instance).success
    stored = data_dir / "outputs" / "model_ref" / "__unpartitioned__.json"
    stored.write_text(stored.read_text()[:25])
    with pytest.raises(RecordError) as caught:
        dg.materialize([model_ref, uses_ref], selection=[uses_ref], resources=_resources(data_dir), instance=instance)
    message = str(caught.value)
    assert message.startswith(f"{stored}: not a readable stored output (JSONDecodeError: ")
    assert message.endswith("rematerialise model_ref (its stored output is rewritten)")
