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
        mode="single_split",
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
