import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
import torch

from workflows.data.features import compute_features
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles
from workflows.io import sha256_file
from workflows.ml.checkpoints import load_checkpoint, save_checkpoint
from workflows.ml.models import ArchConfig
from workflows.ml.pipeline import fit
from workflows.ml.profiles import recipe_for
from workflows.ml.training import train
from workflows.ml.windows import build_windows, parse_iso_hour, training_window
from workflows.serving.promotion import (
    GateConfig,
    GateDecision,
    decide,
    forecast_next_hour,
    gate,
    last_decided_hour,
    last_target_hour,
    load_current,
    noninferiority,
    promote,
    read_pointer,
    write_pointer,
)
from workflows.stats.significance import diebold_mariano


def _hours(end_ts: np.ndarray) -> np.ndarray:
    return end_ts.astype("datetime64[h]").astype(np.int64)


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


# --- the rule on constructed forecasts ------------------------------------------------------------------------


def _scaled_errors(y, f_ref, change, spread, seed):
    """A forecast whose squared errors are the reference's times (1 + w): w has spread `spread` and is shifted
    so that its MSE is exactly (1 + change) x the reference's on these hours."""
    rng = np.random.default_rng(seed)
    e = f_ref - y
    w = rng.uniform(-spread, spread, len(y))
    s = float((e**2).sum())
    w += (change * s - float((e**2 * w).sum())) / s
    return y + e * np.sqrt(1 + w)


@pytest.fixture(scope="module")
def hours240():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(240)
    y = 0.3 * signal + rng.standard_normal(240)
    return y, 0.3 * signal  # next-hour returns and an incumbent with real skill


def test_noninferiority_bound_uses_the_dm_standard_error(hours240):
    y, f_inc = hours240
    f_c = _scaled_errors(y, f_inc, -0.03, 0.5, seed=1)
    p, _ = noninferiority((f_c - y) ** 2, (f_inc - y) ** 2, margin=0.0, alpha=0.05)
    assert p == pytest.approx(diebold_mariano(f_c - y, f_inc - y).p_better, rel=1e-9)
    p_margin, upper = noninferiority((f_c - y) ** 2, (f_inc - y) ** 2, margin=0.02, alpha=0.05)
    assert p_margin < p  # a margin makes non-inferiority easier to show than superiority
    assert (p_margin < 0.05) == (upper < 0.02)  # the test and the bound agree


def test_a_tiny_insignificant_advantage_is_refused(hours240):
    y, f_inc = hours240
    f_c = _scaled_errors(y, f_inc, -0.005, 0.6, seed=1)  # 0.5% lower MSE, noisy loss differences
    d = decide(y, f_c, f_inc)
    assert d.mse_candidate is not None and d.mse_current is not None
    assert d.mse_candidate < d.mse_current  # the old rule (point MSE no worse) would have promoted it
    assert not d.promoted and d.basis == "" and d.comparator == "incumbent"
    assert d.p_better_than_current > 0.05 and d.p_noninferior_to_current > 0.05
    assert d.upper_excess_vs_current > d.margin == 0.02
    assert d.reason.startswith("neither significantly more accurate than the incumbent")
    assert d.hours == 240 and d.alpha == 0.05


def test_a_clear_advantage_is_superior_and_a_tie_is_judged_within_what_the_hours_resolve(hours240):
    y, f_inc = hours240
    better = decide(y, _scaled_errors(y, f_inc, -0.15, 0.6, seed=1), f_inc)
    assert better.promoted and better.basis == "superior" and better.p_better_than_current < 0.05
    assert better.p_zero_better > 0.05
    # 0.5% worse with loss differences this tight: the bound stays under the 2% ceiling (the old rule promoted it),
    # but the hours resolve less than that bound, so the margin shrinks to what they resolve and it is refused
    tie = decide(y, _scaled_errors(y, f_inc, 0.005, 0.05, seed=1), f_inc)
    assert tie.upper_excess_vs_current is not None and tie.margin_used is not None
    assert tie.p_better_than_current > 0.5 and tie.upper_excess_vs_current < 0.02
    assert tie.margin_used == tie.resolvable_excess < tie.upper_excess_vs_current and not tie.promoted
    # 0.1% worse, as tightly measured: inside what the hours resolve, non-inferior; refused at margin 0
    close = decide(y, _scaled_errors(y, f_inc, 0.001, 0.05, seed=1), f_inc)
    assert close.promoted and close.basis == "non-inferior", close.reason
    assert not decide(y, _scaled_errors(y, f_inc, 0.001, 0.05, seed=1), f_inc, GateConfig(margin=0.0)).promoted


def test_significantly_worse_than_zero_is_refused_even_when_better_than_the_incumbent(hours240):
    y, _ = hours240
    rng = np.random.default_rng(3)
    f_inc = 2.0 * rng.standard_normal(240)  # an incumbent far worse than zero
    f_c = 0.8 * rng.standard_normal(240)  # better than it, still clearly worse than zero
    d = decide(y, f_c, f_inc)
    assert d.p_better_than_current < 0.05 and d.p_zero_better < 0.05
    assert not d.promoted and d.reason.startswith("significantly worse than the zero-return forecast")


def test_with_nothing_serving_the_candidate_must_beat_the_zero_forecast(hours240):
    y, f_skilled = hours240
    zero = np.zeros_like(y)
    skilled = decide(y, f_skilled, None)
    assert skilled.promoted and skilled.basis == "superior" and skilled.comparator == "zero-return forecast"
    assert skilled.p_better_than_current is None and skilled.upper_excess_vs_zero < 0
    assert skilled.margin_used is None  # no margin: superiority only
    noisy = decide(y, _scaled_errors(y, zero, 0.01, 0.6, seed=2), None)  # 1% worse, too noisy to tell
    assert not noisy.promoted and noisy.p_zero_better > 0.05 and noisy.p_better_than_zero > 0.05
    assert noisy.reason.startswith("not significantly more accurate than the zero-return forecast on 240 fresh")
    better = decide(y, _scaled_errors(y, zero, -0.01, 0.02, seed=2), None)  # 1% better, measured precisely
    assert better.promoted and better.p_better_than_zero < 0.05 and better.skill_vs_zero == pytest.approx(0.01)


def test_promotion_rates_are_controlled_at_the_margin_and_powerful_beyond_it():
    """Monte Carlo on 240 hours (heavy-tailed returns, two models with the same signal and independent forecast
    noise): a candidate truly worse by the margin is promoted at most about alpha of the time, where the old
    point-MSE rule promoted it about a third of the time and swapped equal models half the time; one truly 8%
    better is promoted most of the time."""
    rng = np.random.default_rng(11)
    n, reps, v_inc = 240, 400, 0.1
    rates = {}
    for excess in (0.02, 0.0, -0.08):  # candidate MSE / incumbent MSE - 1
        v_c = v_inc + excess * (1 + v_inc)
        new = old = 0
        for _ in range(reps):
            signal = rng.standard_normal(n)
            y = 0.15 * signal + rng.standard_t(5, n) * np.sqrt(3 / 5)  # unit-variance noise, heavy tails
            f_inc = 0.15 * signal + np.sqrt(v_inc) * rng.standard_normal(n)
            f_c = 0.15 * signal + np.sqrt(v_c) * rng.standard_normal(n)
            new += decide(y, f_c, f_inc).promoted
            old += np.mean((f_c - y) ** 2) <= np.mean((f_inc - y) ** 2)
        rates[excess] = (new / reps, old / reps)
    assert rates[0.02][0] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)  # measured 0.045
    assert rates[0.02][1] > 0.2  # measured 0.34
    assert rates[0.0][1] > 0.35 and rates[0.0][0] < rates[0.0][1] / 2  # measured 0.49 and 0.10
    assert rates[-0.08][0] > 0.6  # measured 0.80


# --- the gate on checkpoints ----------------------------------------------------------------------------------


def test_gate_refuses_a_model_worse_than_zero(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["bad"], None, feats, data.test.end_ts)
    assert not decision.promoted and decision.comparator == "zero-return forecast"
    assert decision.reason.startswith("not significantly more accurate than the zero-return forecast")
    assert decision.mse_candidate is not None and decision.mse_zero is not None
    assert decision.mse_candidate > decision.mse_zero and decision.upper_excess_vs_zero > decision.margin
    assert decision.p_zero_better < 0.05 and decision.p_better_than_zero > 0.95


def test_gate_accepts_a_better_model_and_refuses_a_worse_successor(setup):
    feats, data, ckpts, _, _ = setup
    first = gate(ckpts["good"], None, feats, data.test.end_ts)
    assert first.mse_candidate is not None and first.mse_zero is not None
    assert first.promoted and first.mse_candidate < first.mse_zero and first.p_better_than_zero < 0.05, first.reason
    # its served intervals and probabilities were checked on the same hours
    assert first.coverage_hours is not None and first.calibration_hours is not None
    assert first.coverage_hours + first.calibration_hours == first.hours
    assert first.kupiec_p_80 > 0.05 and first.christoffersen_p_95 > 0.05 and first.p_base_rate_better > 0.05
    assert first.hours == first.hours_offered == len(data.test)
    assert first.hours_in_sample_candidate == 0 and first.current_window_known is None
    successor = gate(ckpts["bad"], ckpts["good"], feats, data.test.end_ts)
    assert not successor.promoted and successor.p_zero_better < 0.05
    # the same model against itself: equal losses every hour resolve no difference, so nothing to swap
    same = gate(ckpts["good"], ckpts["good"], feats, data.test.end_ts)
    assert not same.promoted and same.margin_used == same.resolvable_excess == 0
    assert same.mse_current == pytest.approx(same.mse_candidate) and same.p_better_than_current == 0.5


def test_gate_promotes_a_clearly_better_candidate(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["good"], ckpts["bad"], feats, data.test.end_ts)
    assert decision.promoted and decision.basis == "superior" and decision.comparator == "incumbent"
    assert decision.p_better_than_current < 1e-6 and decision.p_zero_better > 0.5
    assert decision.reason.startswith(f"significantly more accurate than the incumbent on {len(data.test)} ")


def test_gate_refuses_hours_inside_the_incumbents_training_window(setup):
    feats, data, ckpts, _, _ = setup
    incumbent_last = last_target_hour(ckpts["overlap"])
    forecast_hours = _hours(data.test.end_ts) + 1
    inside = int((forecast_hours <= incumbent_last).sum())
    assert 0 < inside < len(data.test)  # the construction: most test hours are the incumbent's training hours
    decision = gate(ckpts["good"], ckpts["overlap"], feats, data.test.end_ts)
    left = len(data.test) - inside
    assert not decision.promoted and decision.hours == left < 100
    assert decision.hours_in_sample_current == inside and decision.hours_in_sample_candidate == 0
    assert decision.reason.startswith(f"only {left} of {len(data.test)} test hours are fresh, out of sample for both")
    assert f"{inside} inside the incumbent's" in decision.reason and "needs 100" in decision.reason
    # with a lower minimum the gate decides, on exactly the hours after the incumbent's last target
    relaxed = gate(ckpts["good"], ckpts["overlap"], feats, data.test.end_ts, GateConfig(min_hours=20))
    assert relaxed.hours == left and relaxed.p_better_than_current is not None
    assert relaxed.first_hour is not None and relaxed.current_last_target is not None
    assert relaxed.first_hour > relaxed.current_last_target


def test_gate_refuses_a_candidate_that_records_no_training_window(setup):
    feats, data, ckpts, _, _ = setup
    decision = gate(ckpts["legacy"], None, feats, data.test.end_ts)
    assert not decision.promoted and decision.hours == 0 and "records no training window" in decision.reason


def test_a_legacy_incumbent_is_no_evidence_and_yields_only_to_a_candidate_non_inferior_to_zero(setup):
    feats, data, ckpts, _, _ = setup
    # the legacy checkpoint holds the same weights as the candidate: its MSE is shown but not used
    replaced = gate(ckpts["good"], ckpts["legacy"], feats, data.test.end_ts)
    assert replaced.promoted and replaced.comparator == "zero-return forecast"
    assert replaced.current_window_known is False and replaced.current_last_target is None
    assert replaced.mse_current == pytest.approx(replaced.mse_candidate)
    assert replaced.p_better_than_current is None and replaced.p_noninferior_to_current is None
    assert "records no training window" in replaced.reason
    # a candidate that fails against zero leaves the legacy checkpoint serving, even one worse than it
    kept = gate(ckpts["bad"], ckpts["legacy_bad"], feats, data.test.end_ts)
    assert not kept.promoted and kept.current_window_known is False and kept.p_zero_better < 0.05


def test_pointer_and_forecast(setup):
    feats, data, ckpts, paths, folder = setup
    assert load_current(folder) is None
    zero = forecast_next_hour(None, feats)
    assert zero["return_pct"] == 0.0 and "zero-return" in zero["model"]
    decision = gate(ckpts["good"], None, feats, data.test.end_ts)
    path, sha = paths["good"]
    write_pointer(folder, str(path), sha, decision)
    stored = read_pointer(folder)["gate"]
    assert stored == decision.to_dict() and stored["promoted"] is True and stored["margin"] == 0.02
    current = load_current(folder)
    forecast = forecast_next_hour(current, feats)
    lo, hi = forecast["interval_80_pct"]
    assert lo < forecast["return_pct"] < hi
    # calibrated on the model's out-of-sample hours (every hour after its last target, the test hours among them)
    assert current is not None
    note = forecast["interval_calibration"]
    assert note.startswith("adaptive conformal scaled by the model's predictive sd (forecast +- q x sd) on its ")
    assert int(note.split(" on its ")[1].split()[0]) >= len(data.test)
    last = last_target_hour(current)
    assert last is not None and parse_iso_hour(note.split(" out-of-sample hours, ")[1].split(" to ")[0]) > last
    assert forecast["interval_95_pct"][0] < lo
    assert sum(forecast["direction_probabilities"].values()) == pytest.approx(1.0)
    assert forecast["forecast_hour"] > forecast["as_of_candle"]
    assert np.isfinite(forecast["return_pct"])


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
    assert np.isfinite(forecast_next_hour(current, feats)["return_pct"])


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
    """Two runs gating at once: the second judges against the first's winner, never against the same incumbent."""
    feats, data, ckpts, paths, _ = setup
    seen: list = []
    started = threading.Barrier(2)

    def run(name):
        path, sha = paths[name]

        def judge(current, decided_through):
            seen.append(None if current is None else current.sha256)
            time.sleep(0.3)  # both runs are inside the gate at once unless it is serialised
            return gate(ckpts[name], current, feats, data.test.end_ts, GateConfig(min_hours=20), decided_through)

        started.wait()
        promote(tmp_path, str(path), sha, judge)

    # the same candidate twice: the first promotes it (nothing serves; it beats zero), so unless the runs are
    # serialised both would judge against nothing
    threads = [threading.Thread(target=run, args=(name,)) for name in ("good", "good")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 2 and seen[0] is None
    # the second saw the first's promotion as its incumbent
    assert seen[1] == paths["good"][1] and read_pointer(tmp_path) is not None


def test_a_second_decision_counts_only_fresh_hours(setup, tmp_path):
    feats, data, ckpts, paths, _ = setup

    def judge(name):
        return lambda current, through: gate(ckpts[name], current, feats, data.test.end_ts, GateConfig(), through)

    path, sha = paths["good"]
    first, pointer = promote(tmp_path, str(path), sha, judge("good"))
    assert first.promoted and pointer is not None and first.decided_through is None and first.hours_already_decided == 0
    assert first.last_hour is not None and last_decided_hour(tmp_path) == parse_iso_hour(first.last_hour)
    # the same hours again: none is fresh, so no decision; the mark stays where it was
    second, _ = promote(tmp_path, str(path), sha, judge("good"))
    assert not second.promoted and second.hours == 0 and second.hours_already_decided == len(data.test)
    assert second.decided_through == first.last_hour and "already judged by the decision through" in second.reason
    assert last_decided_hour(tmp_path) == parse_iso_hour(first.last_hour)
    # a decision through an earlier hour leaves exactly the later hours fresh
    forecast_hours = np.sort(_hours(data.test.end_ts) + 1)
    mark = int(forecast_hours[len(forecast_hours) // 3])
    third = gate(ckpts["good"], None, feats, data.test.end_ts, GateConfig(min_hours=20), mark)
    assert third.hours == int((forecast_hours > mark).sum()) and third.hours_already_decided == int(
        (forecast_hours <= mark).sum()
    )
    assert third.first_hour is not None and parse_iso_hour(third.first_hour) == int(
        forecast_hours[forecast_hours > mark][0]
    )
    # a refusal that ran its tests uses up its hours too: the next candidate for a first promotion waits for new ones
    folder = tmp_path / "refused"
    refused, none = promote(folder, str(paths["bad"][0]), paths["bad"][1], judge("bad"))
    assert not refused.promoted and refused.decided and none is None
    after, _ = promote(folder, str(path), sha, judge("good"))
    assert not after.promoted and after.hours == 0 and read_pointer(folder) is None


def test_gate_config_is_validated():
    with pytest.raises(ValueError, match="min_hours"):
        GateConfig(min_hours=5)
    with pytest.raises(ValueError, match="alpha"):
        GateConfig(alpha=0.7)


# --- the asset -------------------------------------------------------------------------------------------------


@pytest.mark.slow  # trains the ci multitask model through Dagster
def test_production_model_asset_shows_the_decision(instance, data_dir):
    from workflows.defs.assets_data import candles, features
    from workflows.defs.assets_models import model_assets
    from workflows.defs.assets_serving import latest_forecast, production_model
    from workflows.defs.resources import WarehouseResource

    multitask = next(a for a in model_assets if a.key == dg.AssetKey("multitask_model"))
    instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
    assets = [candles, features, multitask, production_model, latest_forecast]
    resources = {"warehouse": WarehouseResource(data_dir=str(data_dir))}
    config = {
        "ops": {
            "candles": {"config": {"days": 90, "seed": 2, "planted_lag": 1, "planted_strength": 0.5}},
            "multitask_model": {"config": {"profile": "ci"}},
        }
    }
    first = dg.materialize(assets, partition_key="BTCUSDT", instance=instance, resources=resources, run_config=config)
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
        "p_better_than_zero",
        "p_zero_better",
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
    assert meta["margin"].value == 0.02 and meta["hours_compared"].value >= 100
    assert meta["comparator"].value == "zero-return forecast" and meta["hours_already_decided"].value == 0
    assert "Served intervals, adaptive conformal" in meta["tests"].value
    # the decision in words beside the report, with the same figures the UI shows
    record = (data_dir / "reports" / "BTCUSDT" / "promotion_gate.md").read_text()
    assert meta["record"].value.endswith("promotion_gate.md")
    assert ("**PROMOTED**" if meta["promoted"].value else "**REFUSED**") in record
    assert meta["reason"].value in record and meta["tests"].value in record
    assert f"fresh hours compared: {meta['hours_compared'].value} (" in record
    # The verdict is the gate's: 3 ci epochs on this series beat the zero forecast on some runs and not on others,
    # and their direction probabilities may fail the Brier test (measured on CPU: refused, Brier 0.548 vs base rate
    # 0.498, p = 0.001, while DM p = 0.006 against zero). Either way the pointer follows it; then the candidate is
    # installed as the serving model, so the rest runs against an incumbent.
    folder = data_dir / "checkpoints" / "BTCUSDT"
    if meta["promoted"].value:
        assert meta["serving"].value.endswith(".pt") and meta["p_better_than_zero"].value < 0.05
    else:
        assert meta["serving"].value.startswith("zero-return forecast") and read_pointer(folder) is None
        (candidate,) = folder.glob("multitask-*.pt")
        write_pointer(folder, str(candidate), sha256_file(candidate), GateDecision(True, "installed by the test", 0))
    # again, the gate configured: the candidate is now the incumbent
    again = dg.materialize(
        assets,
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        selection=[production_model],
        run_config={"ops": {"production_model": {"config": {"margin": 0.05, "min_hours": 50}}}},
    )
    meta2: dict[str, Any] = dict(again.asset_materializations_for_node("production_model")[0].metadata)
    assert meta2["margin"].value == 0.05 and meta2["min_hours"].value == 50
    # the same hours again: the first decision judged them all, so none is fresh evidence and nothing is decided
    assert meta2["promoted"].value is False and meta2["hours_compared"].value == 0
    assert meta2["hours_already_decided"].value == meta2["hours_offered"].value == meta["hours_offered"].value
    assert meta2["decided_through"].value == meta["last_hour"].value and meta2["incumbent_window_known"].value is True
    # the record says so, and keeps the first decision (the one that ran its tests) below
    again_record = (data_dir / "reports" / "BTCUSDT" / "promotion_gate.md").read_text()
    assert "fresh hours compared: 0 (none)" in again_record and meta2["reason"].value in again_record
    newest, tested = again_record.split("## The newest decision that ran its tests")
    assert meta["reason"].value not in newest and meta["reason"].value in tested and meta["tests"].value in tested
    # the daily retrain on unchanged data (issue 21): a new checkpoint file or the same one, never new bytes under
    # the name the pointer holds; the gate and the served forecast keep working
    pointer = read_pointer(data_dir / "checkpoints" / "BTCUSDT")
    assert pointer is not None
    served, served_bytes = pointer["path"], Path(pointer["path"]).read_bytes()
    retrain = dg.materialize(
        assets,
        partition_key="BTCUSDT",
        instance=instance,
        resources=resources,
        selection=[multitask, production_model, latest_forecast],
        run_config={"ops": {"multitask_model": {"config": {"profile": "ci"}}}},
    )
    assert retrain.success
    assert Path(served).read_bytes() == served_bytes  # the promoted file is untouched
    forecast = dict(retrain.asset_materializations_for_node("latest_forecast")[0].metadata)
    now_serving = read_pointer(data_dir / "checkpoints" / "BTCUSDT")
    assert now_serving is not None and forecast["model"].value == Path(now_serving["path"]).name
    assert np.isfinite(float(forecast["return_pct"].value))  # type: ignore[arg-type]
