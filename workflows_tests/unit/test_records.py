"""Typed results as JSON records: exact round trips, old records read by newer classes, clear refusals."""

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pytest

from workflows.evaluation.evidence import (
    Comparison,
    Evaluation,
    FoldResult,
    IntervalCalibration,
    probability_calibration,
    return_metrics,
)
from workflows.records import RecordError, from_record, to_record
from workflows.stats.significance import dm_test


@dataclass(frozen=True)
class Inner:
    x: float
    span: tuple[float, float]
    tags: tuple[str, ...] = ()


@dataclass
class Outer:
    name: str
    inner: Inner
    by_name: dict[str, Inner]
    items: list[Inner]
    maybe: Inner | None
    array: np.ndarray
    times: np.ndarray
    either: np.ndarray | float = 0.0
    added_later: int = 7
    extra: dict = field(default_factory=dict)
    by_horizon: dict[int, float] = field(default_factory=dict)


def _json_round_trip(value, tp):
    return from_record(json.loads(json.dumps(to_record(value), allow_nan=True)), tp)


def test_nested_dataclasses_arrays_and_nan_round_trip_exactly():
    times = np.array(["2024-01-01T00", "2024-01-01T05"], dtype="datetime64[h]").astype("datetime64[us]")
    value = Outer(
        name="m",
        inner=Inner(float("nan"), (0.1, -0.2), ("a", "b")),
        by_name={"k": Inner(1.5, (1.0, 2.0))},
        items=[Inner(np.float64(2.0).item(), (3.0, 4.0))],
        maybe=None,
        array=np.arange(6, dtype=np.float32).reshape(2, 3),
        times=times,
        either=3.25,
        extra={"n": 1, "s": "x"},
        by_horizon={1: 0.5, 24: 0.25},
    )
    got = _json_round_trip(value, Outer)
    assert math.isnan(got.inner.x) and got.inner.span == (0.1, -0.2) and got.inner.tags == ("a", "b")
    assert got.by_name == {"k": Inner(1.5, (1.0, 2.0))} and got.items == [Inner(2.0, (3.0, 4.0))]
    assert got.maybe is None and got.either == 3.25 and got.extra == {"n": 1, "s": "x"}
    assert got.by_horizon == {1: 0.5, 24: 0.25}
    assert got.array.dtype == np.float32 and np.array_equal(got.array, value.array)
    assert got.times.dtype == times.dtype and np.array_equal(got.times, times)


def test_an_old_record_without_a_newer_field_reads_with_its_default():
    record = to_record(Inner(1.0, (0.0, 1.0)))
    del record["tags"]
    assert from_record(record, Inner) == Inner(1.0, (0.0, 1.0), ())
    del record["x"]
    with pytest.raises(RecordError, match=r"Inner.x is missing"):
        from_record(record, Inner)


def test_values_without_a_faithful_form_are_refused_naming_the_field():
    with pytest.raises(RecordError, match=r"value.array: numpy arrays of dtype object"):
        to_record(Outer("m", Inner(1, (0, 1)), {}, [], None, np.array([object()]), np.array([], "datetime64[us]")))
    with pytest.raises(RecordError, match="dict keys must be strings or integers"):
        to_record({(1, 2): "a"})
    with pytest.raises(RecordError, match="a number is required"):
        from_record({"x": "one", "span": [0, 1]}, Inner)


def test_an_evaluation_survives_the_round_trip():
    rng = np.random.default_rng(0)
    actual = rng.normal(0, 0.01, 300)
    dm = dm_test(rng.normal(0, 1, 300))
    metrics = return_metrics(actual * 0.1, actual, 0.0)
    ev = Evaluation(
        note="two folds",
        hours=100,
        test_start="2024-01-01",
        test_end="2024-01-05",
        returns={"attention_lstm": metrics},
        volatility={},
        family=[Comparison("vs zero", "attention_lstm", "zero", "MSE", 1, 0.02, dm, p_holm=0.02)],
        folds=[FoldResult(1, "a", "b", 100, 50, "c", "d", 1.5, {"m": 0.1}, {"m": (0.0, 0.2)})],
        config={"folds": 2},
    )
    got = _json_round_trip(ev, Evaluation)
    assert got == ev
    assert got.survivors("vs zero")[0].model == "attention_lstm"


def test_interval_calibration_survives_the_round_trip():
    rng = np.random.default_rng(1)
    actual = rng.normal(0, 0.01, 1000)
    metrics = return_metrics(np.zeros(1000), actual, 0.0, np.full(1000, 0.01**2))
    assert set(metrics.calibration) == {80, 95}
    assert _json_round_trip(metrics, type(metrics)) == metrics


def test_direction_probabilities_survive_the_round_trip_and_old_records_still_load():
    rng = np.random.default_rng(2)
    actual = rng.normal(0, 0.01, 1000)
    probs = rng.dirichlet(np.ones(3), 1000)
    outcome = rng.integers(0, 3, 1000)
    ev = Evaluation(
        note="one fold",
        hours=1000,
        test_start="2024-01-01",
        test_end="2024-02-11",
        returns={"multitask": return_metrics(np.zeros(1000), actual, 0.0, np.full(1000, 0.01**2))},
        volatility={},
        family=[],
        folds=[],
        config={},
        probabilities={"multitask": probability_calibration(probs, outcome, np.tile([0.3, 0.4, 0.3], (1000, 1)))},
    )
    got = _json_round_trip(ev, Evaluation)
    assert (
        got == ev
        and got.probabilities["multitask"].reliability["UP"] == ev.probabilities["multitask"].reliability["UP"]
    )
    # a record written before the probabilities and the calibration scale: reads with their defaults
    record = json.loads(json.dumps(to_record(ev), allow_nan=True))
    del record["probabilities"]
    for level in record["returns"]["multitask"]["calibration"].values():
        del level["scale"]
    old = from_record(record, Evaluation)
    assert old.probabilities == {}
    assert all(c.scale == IntervalCalibration.scale for c in old.returns["multitask"].calibration.values())


@dataclass
class Stamped:
    at: datetime
    naive: datetime | None = None


def test_datetimes_round_trip_with_their_offset_and_a_bad_one_names_the_field():
    aware = datetime(2026, 1, 2, 3, tzinfo=timezone.utc)
    value = Stamped(aware, datetime(2026, 1, 2, 3))
    back = _json_round_trip(value, Stamped)
    assert back == value and back.at.tzinfo == timezone.utc and back.naive is not None and back.naive.tzinfo is None
    assert to_record(value) == {"at": "2026-01-02T03:00:00+00:00", "naive": "2026-01-02T03:00:00"}
    with pytest.raises(RecordError, match=r"value\.at: 'yesterday' is not an ISO 8601 time"):
        from_record({"at": "yesterday"}, Stamped)
    with pytest.raises(RecordError, match=r"value\.at: an ISO 8601 time is required, got 5"):
        from_record({"at": 5}, Stamped)
