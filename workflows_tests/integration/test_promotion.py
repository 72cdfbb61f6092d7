import json
import shutil
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pytest
import torch

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.data.warehouse import append_served_forecast, load_served_forecasts
from workflows.evaluation.evidence import interval_calibration
from workflows.evaluation.intervals import WARM_UP, IntervalHistory, log_intervals
from workflows.io import StoredFileError, sha256_file
from workflows.ml.checkpoints import load_checkpoint, save_checkpoint
from workflows.ml.models import ArchConfig
from workflows.ml.pipeline import fit
from workflows.ml.profiles import recipe_for
from workflows.ml.training import train
from workflows.ml.windows import build_windows, parse_iso_hour, training_window
from workflows.records import from_record, to_record
from workflows.serving.gate_closes import HISTORY, Candidate, Look, append_look, judge, read_history
from workflows.serving.gate_record import DECISION_HEADING, HISTORY_HEADING, with_history, with_newest_tested
from workflows.serving.promotion import (
    GateConfig,
    GateDecision,
    evidence_ends,
    forecast_next_hour,
    gate,
    has_window,
    last_target_hour,
    load_current,
    promote,
    read_ledger,
    read_pointer,
    write_pointer,
)
from workflows.serving.promotion import _forecast as model_forecast
from workflows.serving.served_record import (
    ServedForecast,
    served_figures,
    served_metadata,
    served_record_markdown,
    served_row,
)


def _hours(end_ts: np.ndarray) -> np.ndarray:
    return end_ts.astype("datetime64[h]").astype(np.int64)


def _log_history(ckpt, feats) -> IntervalHistory:
    """The forecast log's rows of the served kind as `forecast_log.interval_history` returns them: here the
    checkpoint's own forecasts, predictive variances and outcomes at every hour it has a window for (the test
    is about which intervals are served, not about which model wrote the log)."""
    ends = evidence_ends(feats)
    ends = ends[has_window(ckpt, feats, ends)]
    out = model_forecast(ckpt, feats, ends)
    return IntervalHistory("multitask", ends, out["y"], out["ret"], out["sd"] ** 2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A learnable series (lag 1, strength 0.5), a trained multitask model, a sabotaged one, and checkpoints
    of the trained model that record no training window (legacy) or one that covers the test hours."""
    folder = tmp_path_factory.mktemp("ckpt")
    # 90 days: about 240 test hours, enough for the gate's interval calibration to test the coverage on 70% of them
    feats = compute_features(generate_candles(SyntheticSpec(days=90, lag=1, strength=0.5, seed=2)))
    recipe = recipe_for("multitask", "ci")
    data = build_windows(feats, recipe.window_spec, data_version="v")
    # The same hours split later (a backfill moves the split): its training and validation reach into `data.test`.
    late = build_windows(feats, replace(recipe.window_spec, train_frac=0.85, val_frac=0.1), data_version="v")
    arch = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads))
    torch.manual_seed(0)
    good = train(arch.build(), data, replace(recipe.train, epochs=8)).model
    bad = arch.build()
    ret_head = bad.get_submodule("heads.ret")
    assert isinstance(ret_head, torch.nn.Linear)
    with torch.no_grad():
        ret_head.bias.fill_(3.0)  # always forecasts a 3-sigma move: far worse than zero
    paths = {}
    for name, model, metrics in (
        ("good", good, training_window(data)),
        ("bad", bad, training_window(data)),
        ("legacy", good, {}),
        ("overlap", good, training_window(late)),
        ("legacy_bad", bad, {}),
    ):
        paths[name] = save_checkpoint(
            folder / f"{name}.pt", model, arch, data.scaler, data.spec_dict(), "v", metrics, recipe.train.to_dict()
        )
    return feats, data, {k: load_checkpoint(p) for k, (p, _) in paths.items()}, paths, folder


# --- what a checkpoint records ------------------------------------------------------------------------------


def test_training_window_is_the_last_target_hour_and_fit_records_it(setup, tmp_path):
    feats, data, _, _, _ = setup
    window = training_window(data)
    assert window["train_end_ts"].startswith(str(data.train.end_ts.max())[:19])
    assert window["val_end_ts"].startswith(str(data.val.end_ts.max())[:19])
    assert window["target_horizon_hours"] == data.spec.vol_horizon == 24
    # the split's embargo puts every test window's forecast hour after the last validation target
    assert (_hours(data.test.end_ts) + 1 > int(_hours(data.val.end_ts).max()) + 24).all()
    # fit() records it in the checkpoint (one epoch on the first 25 days: only the bookkeeping matters here)
    recipe = recipe_for("multitask", "ci")
    small = build_windows(feats.head(600), recipe.window_spec, data_version="v600")
    result = fit(replace(recipe, train=replace(recipe.train, epochs=1)), small, tmp_path, "multitask")
    ckpt = load_checkpoint(result.checkpoint, result.sha256)
    assert last_target_hour(ckpt) == int(_hours(small.val.end_ts).max()) + 24
    assert {k: ckpt.metrics[k] for k in window} == training_window(small)


# --- the gate on checkpoints ----------------------------------------------------------------------------------


def test_gate_refuses_a_model_worse_than_zero(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["bad"], None, feats, data.test.end_ts)
    assert not decision.promoted and decision.comparator == "zero-return forecast" and decision.decided
    assert decision.reason.startswith("not shown more accurate than the zero-return forecast (null: no more")
    assert decision.skill_vs_zero is not None and decision.skill_vs_zero < -0.5
    assert decision.e_max is not None and decision.threshold is not None and decision.e_max < 1


def test_gate_accepts_a_better_model_and_refuses_a_worse_successor(setup):
    feats, data, ckpts, _, _ = setup
    first = gate(ckpts["good"], None, feats, data.test.end_ts)
    assert first.promoted and first.skill_vs_zero is not None and first.skill_vs_zero > 0, first.reason
    assert first.e_max is not None and first.threshold is not None and first.e_max >= first.threshold
    assert first.crossed_hour is not None and first.first_hour is not None and first.crossed_hour >= first.first_hour
    # its served intervals and probabilities were checked on the same hours, as one Holm family
    assert first.coverage_hours is not None and first.calibration_hours is not None
    assert first.coverage_hours + first.calibration_hours == first.hours
    assert first.calibration_holm is not None and set(first.calibration_holm) == {
        "kupiec_80",
        "christoffersen_80",
        "kupiec_95",
        "christoffersen_95",
        "brier",
    }
    assert first.hours == first.hours_offered == len(data.test)
    assert first.hours_in_sample_candidate == 0 and first.current_window_known is None
    successor = gate(ckpts["bad"], ckpts["good"], feats, data.test.end_ts)
    assert not successor.promoted and successor.comparator == "incumbent"
    assert successor.skill_vs_comparator is not None and successor.skill_vs_comparator < -0.5


def test_gate_promotes_a_clearly_better_candidate(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["good"], ckpts["bad"], feats, data.test.end_ts)
    assert (
        decision.promoted and decision.basis == "non-inferior to the incumbent" and decision.comparator == "incumbent"
    )
    assert decision.reason.startswith("non-inferior to the incumbent within 0.1%: the e-process reached E = ")


def test_the_evidence_is_every_hour_after_the_candidates_last_target(setup):
    """Offered every hour the features hold, the gate keeps exactly those the candidate forecast out of sample
    (after its last training/validation target, with a window and an outcome) -- however many periods they span."""
    feats, _, ckpts, _, _ = setup
    ends = evidence_ends(feats)
    decision = gate(ckpts["good"], None, feats, ends)
    last = last_target_hour(ckpts["good"])
    assert last is not None
    forecast_hours = _hours(ends) + 1
    usable = (forecast_hours > last) & has_window(ckpts["good"], feats, ends)
    assert decision.hours == int(usable.sum()) and decision.hours_offered == len(ends)
    assert decision.hours_in_sample_candidate == int((forecast_hours <= last).sum())
    assert decision.first_hour is not None and parse_iso_hour(decision.first_hour) == int(forecast_hours[usable][0])
    assert decision.last_hour is not None and parse_iso_hour(decision.last_hour) == int(forecast_hours[usable][-1])


def test_gate_uses_only_hours_out_of_sample_for_the_incumbent_too(setup):
    feats, data, ckpts, _, _ = setup
    incumbent_last = last_target_hour(ckpts["overlap"])
    forecast_hours = _hours(data.test.end_ts) + 1
    inside = int((forecast_hours <= incumbent_last).sum())
    assert 0 < inside < len(data.test)  # the construction: most test hours are the incumbent's training hours
    decision = gate(ckpts["good"], ckpts["overlap"], feats, data.test.end_ts)
    left = len(data.test) - inside
    assert not decision.promoted and decision.hours == left < 100 and not decision.decided
    assert decision.hours_in_sample_current == inside and decision.hours_in_sample_candidate == 0
    assert decision.reason.startswith(f"only {left} evidence hours") and "starts judging at 100" in decision.reason
    # with a shorter burn-in the test runs, on exactly the hours after the incumbent's last target
    relaxed = gate(ckpts["good"], ckpts["overlap"], feats, data.test.end_ts, GateConfig(min_hours=20, t_opt=200))
    assert relaxed.hours == left and relaxed.decided
    assert relaxed.first_hour is not None and relaxed.current_last_target is not None
    assert relaxed.first_hour > relaxed.current_last_target


def test_gate_refuses_a_candidate_that_records_no_training_window(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["legacy"], None, feats, data.test.end_ts)
    assert not decision.promoted and decision.hours == 0 and "records no training window" in decision.reason


def test_a_legacy_incumbent_is_no_evidence_and_yields_only_to_a_candidate_that_beats_zero(setup):
    feats, data, ckpts, _, _ = setup
    # the legacy checkpoint holds the same weights as the candidate: its MSE is shown but not used
    replaced = gate(ckpts["good"], ckpts["legacy"], feats, data.test.end_ts)
    assert replaced.promoted and replaced.comparator == "zero-return forecast"
    assert replaced.current_window_known is False and replaced.current_last_target is None
    assert replaced.mse_current == pytest.approx(replaced.mse_candidate)
    # a candidate that fails against zero leaves the legacy checkpoint serving, even one worse than it
    kept = gate(ckpts["bad"], ckpts["legacy_bad"], feats, data.test.end_ts)
    assert not kept.promoted and kept.current_window_known is False and kept.comparator == "zero-return forecast"


def test_pointer_and_forecast(setup):
    feats, data, ckpts, paths, folder = setup
    assert load_current(folder) is None
    zero = forecast_next_hour(None, feats)
    assert zero.return_pct == 0.0 and "zero-return" in zero.model and zero.interval_80_pct is None
    decision = gate(ckpts["good"], None, feats, data.test.end_ts)
    path, sha = paths["good"]
    write_pointer(folder, str(path), sha, decision)
    stored = read_pointer(folder)["gate"]
    assert stored == decision.to_dict() and stored["promoted"] is True and stored["margin"] == 0.001
    current = load_current(folder)
    assert current is not None
    history = _log_history(current, feats)
    assert forecast_next_hour(current, feats).interval_80_pct is None  # no forecast log: no interval
    forecast = forecast_next_hour(current, feats, history)
    assert forecast.interval_80_pct is not None and forecast.interval_95_pct is not None
    lo, hi = forecast.interval_80_pct
    assert lo < forecast.return_pct < hi
    # calibrated on the forecast log's rows before the hour: here every one of them
    note = forecast.interval_calibration or ""
    n = len(history.y)
    assert note.startswith(
        f"adaptive conformal scaled by the model's predictive sd (forecast +- q x sd) on the forecast log's {n} "
        "hours of multitask"
    )
    assert forecast.interval_95_pct[0] < lo
    assert sum((forecast.direction_probabilities or {}).values()) == pytest.approx(1.0)
    assert forecast.forecast_hour - forecast.as_of_candle == timedelta(hours=1)
    assert np.isfinite(forecast.return_pct)
    assert forecast.checkpoint_sha256 == sha and (forecast.conformal_state or "").endswith(f"/{n}")
    assert forecast.sd_pct is not None and forecast.sd_pct > 0
    # stored through the records module: the typed forecast survives a JSON round trip
    assert from_record(json.loads(json.dumps(to_record(forecast))), ServedForecast) == forecast


def test_latest_forecasts_interval_for_an_hour_is_the_reports_interval_for_it(setup):
    """The served model forecasts hours whose rows are in the log (as the newest period's model does): what
    `forecast_next_hour` serves for each is the report's interval for it, and the report's coverage is that of
    the intervals served (`interval_calibration` over the same rows)."""
    feats, _, ckpts, _, _ = setup
    history = _log_history(ckpts["good"], feats)
    report = log_intervals(history.y, history.forecast, history.variance)
    assert report is not None
    ts = feats["ts"].to_numpy()
    n = len(history.y)
    for t in (WARM_UP, n // 2, n - 1):  # the warm-up's end, the middle, the newest row of the log
        end = int(np.searchsorted(ts, history.origin_ts[t])) + 1  # feature rows 0..end-1: the newest is the origin
        forecast = forecast_next_hour(ckpts["good"], feats.head(end), history)
        # one window at serving against a batch in the log: the model's float32 arithmetic moves its forecast and
        # sd by about 1e-7 of themselves; the conformal quantile is the report's to 1e-12, and the interval differs
        # from the report's by no more than that round-off moves forecast +- q x sd
        assert forecast.sd_pct is not None
        ret, sd = forecast.return_pct / 100, forecast.sd_pct / 100
        d_ret, d_sd = abs(ret - history.forecast[t]), abs(sd - np.sqrt(history.variance[t]))
        assert d_ret < 1e-6 * abs(ret) + 1e-12 and d_sd < 1e-6 * sd
        for pct in (80, 95):
            interval = forecast.interval_80_pct if pct == 80 else forecast.interval_95_pct
            assert interval is not None
            lo, hi = (x / 100 for x in interval)
            q = report[pct / 100].quantile[t]
            assert (hi - lo) / (2 * sd) == pytest.approx(q, abs=1e-9)
            assert abs(lo - report[pct / 100].lower[t]) <= d_ret + q * d_sd + 1e-12
            assert abs(hi - report[pct / 100].upper[t]) <= d_ret + q * d_sd + 1e-12
    cal = interval_calibration(history.forecast, history.y, history.variance)
    t = slice(WARM_UP, None)
    inside = (history.y[t] >= report[0.80].lower[t]) & (history.y[t] <= report[0.80].upper[t])
    assert cal[80].after.observed == pytest.approx(inside.mean(), abs=1e-12)


def test_a_second_save_never_overwrites_a_named_checkpoint(setup, tmp_path):
    """Checkpoints are content-addressed: other bytes get another name, the same bytes the same untouched file."""
    _, data, ckpts, _, _ = setup
    good = ckpts["good"]
    args = (good.model, good.arch, data.scaler, data.spec_dict(), "v")
    first, sha1 = save_checkpoint(tmp_path / "multitask-v-r.pt", *args, {"best_val_loss": 1.0}, {})
    before = first.read_bytes()
    second, sha2 = save_checkpoint(tmp_path / "multitask-v-r.pt", *args, {"best_val_loss": 2.0}, {})  # a retrain
    assert second != first and sha2 != sha1 and first.read_bytes() == before
    assert first.name == f"multitask-v-r-{sha1[:16]}.pt"
    assert load_checkpoint(first, sha1).metrics == {"best_val_loss": 1.0}  # what a pointer to it expects still loads
    stamp = first.stat().st_mtime_ns
    again, sha3 = save_checkpoint(tmp_path / "multitask-v-r.pt", *args, {"best_val_loss": 1.0}, {})  # identical bytes
    assert (again, sha3) == (first, sha1) and first.stat().st_mtime_ns == stamp


def test_the_pointer_is_relative_and_survives_a_moved_data_folder(setup, tmp_path):
    feats, data, ckpts, _, _ = setup
    folder = tmp_path / "data" / "checkpoints" / "BTCUSDT"
    folder.mkdir(parents=True)
    good = ckpts["good"]
    path, sha = save_checkpoint(
        folder / "multitask.pt", good.model, good.arch, data.scaler, data.spec_dict(), "v", good.metrics, {}
    )
    write_pointer(folder, str(path), sha, gate(good, None, feats, data.test.end_ts))
    assert json.loads((folder / "production.json").read_text())["path"] == path.name
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "data", moved)
    current = load_current(moved / "checkpoints" / "BTCUSDT")
    assert current is not None and current.sha256 == sha and current.path.parent == moved / "checkpoints" / "BTCUSDT"
    assert np.isfinite(forecast_next_hour(current, feats).return_pct)


def test_a_missing_serving_file_is_an_error_not_the_zero_forecast(setup, tmp_path):
    feats, data, ckpts, _, _ = setup
    good = ckpts["good"]
    path, sha = save_checkpoint(
        tmp_path / "multitask.pt", good.model, good.arch, data.scaler, data.spec_dict(), "v", good.metrics, {}
    )
    write_pointer(tmp_path, str(path), sha, gate(good, None, feats, data.test.end_ts))
    path.unlink()
    rule = r"names the serving checkpoint .* which does not exist: rebuild it with `workflows run --symbol "
    with pytest.raises(FileNotFoundError, match=rule):
        load_current(tmp_path)


def test_the_gate_is_serialised_per_symbol(setup, tmp_path):
    """Two runs gating the same candidate at once: the second waits, finds it serving and judges nothing; unserialised,
    both would judge it against nothing."""
    feats, data, ckpts, paths, _ = setup
    seen: list = []
    decisions: list = []
    started = threading.Barrier(2)
    path, sha = paths["good"]

    def judge(current, k):
        seen.append(None if current is None else current.sha256)
        time.sleep(0.3)  # both runs are inside the gate at once unless it is serialised
        return gate(ckpts["good"], current, feats, data.test.end_ts, GateConfig(), k)

    def run():
        started.wait()
        decisions.append(promote(tmp_path, str(path), sha, judge)[0])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [None] and sorted(d.self_comparison for d in decisions) == [False, True]
    pointer = read_pointer(tmp_path)
    assert pointer is not None and pointer["sha256"] == sha


def test_self_comparison_is_not_a_decision_and_consumes_nothing(setup, tmp_path):
    feats, data, ckpts, paths, _ = setup
    judged: list[int] = []

    def judge(name):
        def run(current, k):
            judged.append(k)
            return gate(ckpts[name], current, feats, data.test.end_ts, GateConfig(), k)

        return run

    path, sha = paths["good"]
    first, pointer = promote(tmp_path, str(path), sha, judge("good"))
    assert first.promoted and pointer is not None and judged == [1] and len(read_ledger(tmp_path)) == 1
    again, same = promote(tmp_path, str(path), sha, judge("good"))
    assert again.self_comparison and not again.promoted and again.hours == 0 and not again.decided
    assert "is the serving checkpoint (same sha256): not a decision" in again.reason
    assert judged == [1] and len(read_ledger(tmp_path)) == 1 and same == read_pointer(tmp_path) == pointer
    # gate() says the same when handed the incumbent as its own candidate
    assert gate(ckpts["good"], ckpts["good"], feats, data.test.end_ts).self_comparison


def test_the_ledger_numbers_each_test_once(setup, tmp_path):
    """k counts (candidate, comparator) tests in the order they first run; a candidate seen again keeps its k, a
    new incumbent makes a new test, and a candidate with too few hours takes no k."""
    feats, data, ckpts, paths, _ = setup

    def judge(name, ends=data.test.end_ts):
        return lambda current, k: gate(ckpts[name], current, feats, ends, GateConfig(), k)

    bad, good = paths["bad"], paths["good"]
    few, _ = promote(tmp_path, str(good[0]), good[1], judge("good", data.test.end_ts[:50]))
    assert not few.decided and read_ledger(tmp_path) == []
    promoted, _ = promote(tmp_path, str(good[0]), good[1], judge("good"))
    assert promoted.promoted and promoted.test_index == 1 and promoted.level == pytest.approx(0.05 * 6 / np.pi**2)
    versus, _ = promote(tmp_path, str(bad[0]), bad[1], judge("bad"))
    assert not versus.promoted and versus.test_index == 2 and versus.comparator == "incumbent"
    again, _ = promote(tmp_path, str(bad[0]), bad[1], judge("bad"))
    assert again.test_index == 2 and again.level == pytest.approx(promoted.level / 4)
    ledger = read_ledger(tmp_path)
    assert [t["k"] for t in ledger] == [1, 2] and ledger[1]["comparator"] == good[1]
    assert ledger[0]["comparator"] == "zero-return forecast" and ledger[1]["candidate_sha256"] == bad[1]


def test_a_backfill_is_judged_month_by_month_at_each_close_then_the_newest_on_every_hour(setup, tmp_path):
    """Each month's candidate is judged once at its close on the hours through that close (nothing later is
    offered to it), oldest first and against what served then; the newest on every hour; a look at the serving
    checkpoint is no decision; each look is one line of the history, and the record shows them all."""
    feats, _, _, paths, _ = setup

    def month(period: str, name: str) -> Candidate:
        return Candidate(period, str(paths[name][0]), paths[name][1])

    # November closes before the first test hour (December): the bad model has no hour through its close
    decision, pointer, looks = judge([month("2025-11-01", "bad"), month("2025-12-01", "good")], tmp_path, feats)
    assert decision.promoted and decision.test_index == 1 and pointer is not None and decision.hours > 200
    assert [(x.period, x.at_close, x.decided, x.hours) for x in looks] == [
        ("2025-11-01", True, False, 0),
        ("2025-12-01", False, True, decision.hours),
    ]
    assert looks[1].last_hour is not None and looks[1].last_hour.startswith("2025-12-31")
    assert looks[0].serving == "" and looks[1].serving == Path(paths["good"][0]).name
    # two months later: December's close finds its candidate serving (no test), January's close judges the bad
    # model against it (test 2), and February's candidate is the serving checkpoint: no decision, not recorded
    months = [month("2025-11-01", "bad"), month("2025-12-01", "good"), month("2026-01-01", "bad")]
    decision, _, looks = judge([*months, month("2026-02-01", "good")], tmp_path, feats)
    assert decision.self_comparison and not decision.decided
    assert [(x.period, x.at_close, x.decided, x.test_index, x.promoted) for x in looks[2:]] == [
        ("2025-12-01", True, False, None, False),
        ("2026-01-01", True, True, 2, False),
    ]
    assert looks[3].comparator == "incumbent" and looks[3].serving == Path(paths["good"][0]).name
    assert [t["k"] for t in read_ledger(tmp_path)] == [1, 2]
    # the next run: every close is judged, nothing new is recorded
    again, _, same = judge([*months, month("2026-02-01", "good")], tmp_path, feats)
    assert again.self_comparison and same == looks
    # the record shows every look once, also below an undecided decision that carries the newest tested one
    previous = with_history(f"# Promotion gate: X\n\n{DECISION_HEADING}\n\nE = 1.2\n", looks)
    record = with_history(with_newest_tested("# Promotion gate: X\n", again, previous), same)
    assert "E = 1.2" in record and record.count(HISTORY_HEADING) == 1 and record.count("| month close |") == 3
    assert record.count("| hours so far |") == 1 and record.count("| PROMOTED |") == 1


def test_a_month_whose_checkpoint_is_gone_is_recorded_unjudged_and_the_gate_goes_on(setup, tmp_path):
    feats, _, _, paths, _ = setup
    gone = Candidate("2025-11-01", str(tmp_path / "multitask-2025-11-01-deleted.pt"), "0" * 64)
    newest = Candidate("2025-12-01", str(paths["good"][0]), paths["good"][1])
    decision, pointer, looks = judge([gone, newest], tmp_path, feats)
    assert decision.promoted and pointer is not None
    assert [(x.period, x.at_close, x.decided) for x in looks] == [
        ("2025-11-01", True, False),
        ("2025-12-01", False, True),
    ]
    assert (
        looks[0].reason.startswith("not judged at its close:") and "multitask-2025-11-01-deleted.pt" in looks[0].reason
    )
    # judged once: the next run does not try the lost month again
    assert judge([gone, newest], tmp_path, feats)[2] == looks


def test_a_history_line_cut_short_is_dropped_and_a_damaged_one_is_named(tmp_path):
    look = Look("2026-01-01T00:00:00+00:00", "2025-12-01", True, "m.pt", False, False, "too few hours", 0)
    append_look(tmp_path, look)
    (tmp_path / HISTORY).write_text((tmp_path / HISTORY).read_text() + '{"judged_at": "2026-01-02')  # a crash
    assert read_history(tmp_path) == [look]
    append_look(tmp_path, look)  # the cut line goes, the new one lands whole
    assert read_history(tmp_path) == [look, look]
    (tmp_path / HISTORY).write_text("[1, 2]\n" + (tmp_path / HISTORY).read_text())
    with pytest.raises(StoredFileError, match=r"gate_history.jsonl.*line 1 is not a look"):
        read_history(tmp_path)


# --- the asset -------------------------------------------------------------------------------------------------


def _log_one_multitask_period(warehouse) -> None:
    """December 2025's multi-task period model (ci), trained and logged through the code its assets call (the
    other kinds left out: the gate reads only the served kind)."""
    from workflows.data.warehouse import load_features
    from workflows.evaluation.forecast_log import update_period
    from workflows.ml.period_models import train_period_model
    from workflows.ml.periods import ForecastPeriod, PeriodConfig

    period, cfg = ForecastPeriod.from_key("2025-12-01"), PeriodConfig(min_train_days=30)
    with warehouse.connect() as con:
        table, _ = load_features(con, "BTCUSDT")
    folder = warehouse.paths().checkpoints / "BTCUSDT" / "periods" / period.key
    recipe = recipe_for("multitask", "ci")
    model = train_period_model(warehouse.connect, table, "BTCUSDT", "multitask", recipe, period, cfg, folder, "1", "ci")
    with warehouse.connect() as con:
        update_period(con, table, "BTCUSDT", period, {"multitask": model.load()}, cfg)


@pytest.mark.slow  # trains the ci multitask model of one forecast period
def test_production_model_asset_shows_the_decision(instance, data_dir):
    from workflows.defs.assets_data import candles, features
    from workflows.defs.assets_models import model_assets
    from workflows.defs.assets_serving import latest_forecast, production_model
    from workflows.defs.resources import WarehouseResource

    multitask = next(a for a in model_assets if a.key == dg.AssetKey("multitask_model"))
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    assets = [candles, features, multitask, production_model, latest_forecast]
    warehouse = WarehouseResource(data_dir=str(data_dir))
    resources = {"warehouse": warehouse}
    landed = {"candles": {"config": {"days": 90, "seed": 2, "planted_lag": 1, "planted_strength": 0.5}}}
    dg.materialize(
        assets,
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        selection=[candles, features],
        run_config={"ops": landed},
    )
    _log_one_multitask_period(warehouse)
    first = dg.materialize(
        assets,
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        selection=[multitask, production_model, latest_forecast],
    )
    meta: dict[str, Any] = dict(first.asset_materializations_for_node("production_model")[0].metadata)
    check = next(c for c in first.get_asset_check_evaluations() if c.check_name == "promotion_gate")
    assert check.passed == meta["promoted"].value
    for key in (
        "reason",
        "hours_compared",
        "hours_offered",
        "margin",
        "alpha",
        "min_hours",
        "tests",
        "e_value",
        "e_max",
        "threshold",
        "test_index",
        "level",
        "skill_vs_zero",
        "resolvable_excess",
        "coverage_80",
        "kupiec_p_80",
        "christoffersen_p_95",
        "conformal_q95",
        "brier",
        "brier_base_rate",
        "candidate_last_target",
    ):
        assert key in meta and key in check.metadata, key
    assert meta["margin"].value == 0.001 and meta["hours_compared"].value >= 100 and meta["test_index"].value == 1
    assert meta["comparator"].value == "zero-return forecast"
    assert "Anytime-valid test 1 on this symbol" in meta["tests"].value
    assert "Served intervals, adaptive conformal" in meta["tests"].value
    # the decision in words beside the report, with the same figures the UI shows
    record = (data_dir / "reports" / "BTCUSDT" / "promotion_gate.md").read_text()
    assert meta["record"].value.endswith("promotion_gate.md")
    assert ("**PROMOTED**" if meta["promoted"].value else "**REFUSED**") in record
    assert meta["reason"].value in record and meta["tests"].value in record
    assert f"evidence hours: {meta['hours_compared'].value} (" in record
    # the served forecast landed in the served record, and the UI shows the record's state
    served = dict(first.asset_materializations_for_node("latest_forecast")[0].metadata)
    assert served["appended_to_record"].value is True and served["served_record_rows"].value == 1
    assert (data_dir / "reports" / "BTCUSDT" / "served_record.md").exists()
    # The verdict is the gate's: 3 ci epochs on this series beat the zero forecast on some runs and not on others.
    # Either way the pointer follows it; then the candidate is installed as the serving model, so the rest runs
    # against an incumbent.
    folder = data_dir / "checkpoints" / "BTCUSDT"
    if meta["promoted"].value:
        assert meta["serving"].value.endswith(".pt") and meta["e_max"].value >= meta["threshold"].value
    else:
        assert meta["serving"].value.startswith("zero-return forecast") and read_pointer(folder) is None
        (candidate,) = folder.rglob("multitask-*.pt")  # the period model, under periods/<period>/
        write_pointer(folder, str(candidate), sha256_file(candidate), GateDecision(True, "installed by the test", 0))
    # again: the candidate is now the incumbent, so this is no decision and takes no place in the ledger
    again = dg.materialize(
        assets,
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        selection=[production_model, latest_forecast],
        run_config={"ops": {"production_model": {"config": {"margin": 0.002, "min_hours": 50}}}},
    )
    meta2: dict[str, Any] = dict(again.asset_materializations_for_node("production_model")[0].metadata)
    assert meta2["self_comparison"].value is True and meta2["promoted"].value is False
    assert meta2["hours_compared"].value == 0 and len(read_ledger(folder)) == 1
    # the record says so, and keeps the first decision (the one that ran its test) below
    again_record = (data_dir / "reports" / "BTCUSDT" / "promotion_gate.md").read_text()
    assert meta2["reason"].value in again_record
    newest, tested = again_record.split("## The newest decision that ran its test")
    assert meta["reason"].value not in newest and meta["reason"].value in tested and meta["tests"].value in tested
    # the forecast for the same hour again: the record keeps the first, adds nothing
    served2 = dict(again.asset_materializations_for_node("latest_forecast")[0].metadata)
    assert served2["appended_to_record"].value is False and served2["served_record_rows"].value == 1
    # the daily report on unchanged data (issue 21): the model asset names the same period model, never new bytes
    # under the name the pointer holds; the gate and the served forecast keep working
    pointer = read_pointer(data_dir / "checkpoints" / "BTCUSDT")
    assert pointer is not None
    served_path, served_bytes = pointer["path"], Path(pointer["path"]).read_bytes()
    retrain = dg.materialize(
        assets,
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        selection=[multitask, production_model, latest_forecast],
    )
    assert retrain.success
    assert Path(served_path).read_bytes() == served_bytes  # the promoted file is untouched
    forecast = dict(retrain.asset_materializations_for_node("latest_forecast")[0].metadata)
    now_serving = read_pointer(data_dir / "checkpoints" / "BTCUSDT")
    assert now_serving is not None and forecast["model"].value == Path(now_serving["path"]).name
    assert np.isfinite(float(forecast["return_pct"].value))  # type: ignore[arg-type]


# --- the served record ---------------------------------------------------------------------------------------


def test_every_served_forecast_lands_once_across_a_restart_and_a_rerun(setup, tmp_path):
    """The served model forecasts hour after hour, a new connection each time (a restart between runs), one hour
    served twice (a rerun): each hour lands once, the rerun changes nothing, and once the outcomes land the
    record's coverage is what its rows and the features say."""
    feats, _, ckpts, _, _ = setup
    db = tmp_path / "warehouse.duckdb"
    n = feats.height
    ends = [n - 30 + i for i in range(24)]
    ends.insert(5, ends[4])  # the fifth hour served again
    appended, first_served = [], {}
    history = _log_history(ckpts["good"], feats)  # each hour's interval rests on the rows before it only
    for end in ends:
        forecast = forecast_next_hour(ckpts["good"], feats.head(end), history)
        with duckdb.connect(str(db)) as con:
            appended.append(append_served_forecast(con, served_row("BTCUSDT", forecast)))
            if forecast.forecast_hour not in first_served:
                first_served[forecast.forecast_hour] = forecast
    assert appended == [True] * 5 + [False] + [True] * 19
    with duckdb.connect(str(db)) as con:
        record = load_served_forecasts(con, "BTCUSDT")
    assert record.height == record["forecast_hour"].n_unique() == 24 and record["forecast_hour"].is_sorted()
    row = record.row(4, named=True)
    forecast = first_served[row["forecast_hour"]]
    assert (row["lo95_pct"], row["hi95_pct"]) == forecast.interval_95_pct
    assert row["checkpoint_sha256"] == ckpts["good"].sha256 and row["conformal_state"] == forecast.conformal_state
    assert row["p_down"] + row["p_stable"] + row["p_up"] == pytest.approx(1.0)
    # outcomes: every served hour but the last has landed in the full features
    figures = served_figures(record, feats)
    actual = dict(zip(feats["ts"].to_list(), (100 * feats["log_return"]).to_list()))
    landed = [r for r in record.iter_rows(named=True) if r["forecast_hour"] in actual]
    assert figures.served == 24 and figures.with_outcome == len(landed) >= 23
    inside = [r["lo80_pct"] <= actual[r["forecast_hour"]] <= r["hi80_pct"] for r in landed]
    assert figures.intervals[80].coverage == pytest.approx(np.mean(inside))
    assert figures.intervals[80].kupiec_p is not None and figures.holm is not None and "brier" in figures.holm
    meta = served_metadata(figures)
    assert meta["served_coverage_80"] == figures.intervals[80].coverage and meta["served_record_rows"] == 24
    text = served_record_markdown("BTCUSDT", figures, {"coverage_80": 0.8, "brier": 0.5, "brier_base_rate": 0.6})
    assert f"{figures.intervals[80].coverage:.1%} of {figures.intervals[80].hours}" in text and "80.0%" in text
