"""The I/O manager stores typed results as JSON records under a stable type name, never pickles,
and hands them back typed to downstream assets."""

import json
from dataclasses import replace

import dagster as dg
import numpy as np
import pytest

from workflows.defs.resources import RecordsIOManager, WarehouseResource
from workflows.evaluation.evidence import Comparison, Evaluation, return_metrics
from workflows.io import StoredFileError
from workflows.ml.model_ref import ModelRef
from workflows.ml.periods import PeriodConfig
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


# --- model references: typed, and yesterday's plain dicts still read ------------------------------------------

REF = ModelRef(
    path="/tmp/not-used",  # replaced below by a path under the data folder
    sha256="ab" * 32,
    kind="multitask",
    profile="ci",
    period="2026-01-01",
    period_config=PeriodConfig(train_days=90, min_train_days=30),
    train_key="k",
)


@dg.asset
def typed_ref(warehouse: WarehouseResource) -> ModelRef:
    return replace(REF, path=str(warehouse.paths().checkpoints / "BTCUSDT" / "multitask-x.pt"))


@dg.asset
def reads_typed_ref(warehouse: WarehouseResource, typed_ref: ModelRef) -> None:
    assert typed_ref == replace(REF, path=str(warehouse.paths().checkpoints / "BTCUSDT" / "multitask-x.pt"))
    assert typed_ref.month == "2026-01" and typed_ref.file_name == "multitask-x.pt"


def test_a_model_ref_is_stored_under_its_type_name_and_read_back_typed(data_dir, instance):
    assert dg.materialize([typed_ref, reads_typed_ref], resources=_resources(data_dir), instance=instance).success
    record = json.loads((data_dir / "outputs" / "typed_ref" / "__unpartitioned__.json").read_text())
    assert record["type"] == "ModelRef"
    assert record["value"]["path"] == "${data}/checkpoints/BTCUSDT/multitask-x.pt"
    assert record["value"]["period_config"] == {
        "train_days": 90,
        "min_train_days": 30,
        "val_days": 14,
        "warm_epochs": 5,
        "warm_patience": 2,
    }


def _write_yesterdays_ref(data_dir, value: dict):
    """A `typed_ref` output as the previous version stored it: plain JSON of the reference dict."""
    stored = data_dir / "outputs" / "typed_ref" / "__unpartitioned__.json"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps({"schema": 1, "type": "json", "value": value}))
    return stored


def test_a_model_ref_stored_as_a_plain_dict_by_the_previous_version_reads_typed(data_dir, instance):
    _write_yesterdays_ref(
        data_dir,
        {
            "path": "${data}/checkpoints/BTCUSDT/multitask-x.pt",
            "sha256": "ab" * 32,
            "kind": "multitask",
            "period": "2026-01-01",
            "train_key": "k",
            "profile": "ci",
            "period_config": {"train_days": 90, "min_train_days": 30, "val_days": 14, "warm_epochs": 5},
            "history_days": None,  # a key the previous version wrote and this one ignores
        },
    )
    result = dg.materialize(
        [typed_ref, reads_typed_ref], selection=[reads_typed_ref], resources=_resources(data_dir), instance=instance
    )
    assert result.success


def test_a_previous_ref_without_its_period_settings_names_the_file_and_the_remedy(data_dir, instance):
    stored = _write_yesterdays_ref(
        data_dir, {"path": "x.pt", "sha256": "ab", "kind": "multitask", "period": "2026-01-01", "profile": None}
    )
    with pytest.raises(StoredFileError) as caught:
        dg.materialize(
            [typed_ref, reads_typed_ref], selection=[reads_typed_ref], resources=_resources(data_dir), instance=instance
        )
    message = str(caught.value)
    assert message.startswith(f"{stored}: a model reference cannot be read (")
    assert "period_config is missing" in message
    assert message.endswith("rematerialise typed_ref (its stored output is rewritten)")
