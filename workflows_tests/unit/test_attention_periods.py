"""Attention read from the forecast periods' models: controls kept per period, evidence pooled exactly."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from workflows.attention import sanity
from workflows.attention.analysis import PeriodReading, analyse, describe
from workflows.attention.periods import (
    PeriodEvidence,
    evidence_fingerprint,
    evidence_of,
    load_evidence,
    pool,
    save_evidence,
    stored_fingerprint,
)
from workflows.ml.models import ArchConfig
from workflows.ml.training import TrainConfig, predict
from workflows.reporting.attention_text import period_spread_lines
from workflows.reporting.report import period_attention_source
from workflows_tests.unit.test_attention_analysis import checkpoint, noisy
from workflows_tests.unit.test_attention_sanity import tiny_data

pytestmark = pytest.mark.usefixtures("one_thread")
ARCH = ArchConfig("query_attention_lstm", 3, {"hidden": 16, "d_attn": 8, "scales": [6, 24, 48]})


def _counting_train(monkeypatch) -> list[TrainConfig]:
    configs: list[TrainConfig] = []
    real = sanity.train

    def spy(model, data, config):
        configs.append(config)
        return real(model, data, config)

    monkeypatch.setattr(sanity, "train", spy)
    return configs


def test_a_period_trains_its_control_once_reuses_it_and_warm_starts_the_next(tmp_path, monkeypatch):
    trained = _counting_train(monkeypatch)
    data, cfg = tiny_data(), TrainConfig(epochs=3, patience=3, device="cpu", snapshot_every=0)
    dec = sanity.ControlStore(tmp_path / "2025-12-01" / "controls", warm_epochs=1, warm_patience=1)
    first = sanity.shuffled_target_model(ARCH, data, cfg, store=dec)
    assert len(trained) == 1 and trained[0].epochs == 3 and len(dec.trained()) == 1
    # the month's hours grow: the same training slice, the same control, nothing trained
    more = replace(data, test=replace(data.test, x=np.concatenate([data.test.x, data.test.x])))
    again = sanity.shuffled_target_model(ARCH, more, cfg, store=dec)
    assert len(trained) == 1
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    # corrected candles before the month: another training slice, the control is retrained
    sanity.shuffled_target_model(ARCH, replace(data, data_version="corrected"), cfg, store=dec)
    assert len(trained) == 2
    # the next month starts from December's control, for at most warm_epochs
    jan = sanity.ControlStore(tmp_path / "2026-01-01" / "controls", previous=dec.folder, warm_epochs=1, warm_patience=1)
    sanity.shuffled_target_model(ARCH, replace(data, data_version="corrected"), cfg, store=jan)
    assert len(trained) == 3 and trained[-1].epochs == 1 and trained[-1].patience == 1
    # a store with no previous month trains from scratch, with the recipe's epochs
    feb = sanity.ControlStore(tmp_path / "2026-02-01" / "controls", previous=tmp_path / "none", warm_epochs=1)
    sanity.shuffled_target_model(ARCH, data, cfg, store=feb)
    assert trained[-1].epochs == 3


def _analysed_period(tmp_path, seed: int, period: str, start: int) -> tuple:
    data = tiny_data(n_test=120)
    data = replace(data, test=replace(data.test, end_ts=data.test.end_ts + start))
    torch.manual_seed(seed)
    ckpt = checkpoint(ARCH.build(), ARCH, data)
    out = predict(ckpt.model, data.test.x)
    tensors = {k: out[k] for k in ("attention", "scale_attention") if k in out}
    analysed = analyse(
        ckpt,
        data,
        tensors["attention"],
        scale_attention=tensors["scale_attention"],
        deletion_draws=40,
        resamples=200,
        control_store=sanity.ControlStore(tmp_path / period / "controls"),
    )
    ev = evidence_of(period, f"model-{seed}.pt", analysed, tensors, ARCH.kwargs["scales"])
    return analysed.analysis, load_evidence(save_evidence(tmp_path / period / "attention_lstm.npz", ev))


def test_one_period_pooled_is_that_period_s_analysis_exactly(tmp_path):
    an, ev = _analysed_period(tmp_path, 0, "2025-12", 0)
    pooled = pool([ev], resamples=200)
    assert pooled.verdict == an.verdict and pooled.summary == an.summary
    assert pooled.ablation == an.ablation and pooled.deletion == an.deletion
    assert pooled.attribution == an.attribution and pooled.pools == an.pools
    assert pooled.control_bootstrap == an.control_bootstrap
    assert pooled.periods == [ev.reading] and ev.reading.windows == 120 and ev.reading.checkpoint == "model-0.pt"


def test_two_periods_pool_every_window_from_its_own_model(tmp_path):
    an_a, a = _analysed_period(tmp_path, 0, "2025-12", 0)
    an_b, b = _analysed_period(tmp_path, 1, "2026-01", 744)
    pooled = pool([a, b], resamples=200)
    assert pooled.summary.windows == 240 and [p.period for p in pooled.periods] == ["2025-12", "2026-01"]
    # the ablation's losses: each period's own, pooled, so the pooled losses are their window-weighted means
    assert an_a.ablation and an_b.ablation and pooled.ablation
    assert pooled.ablation.mse_attention == pytest.approx(
        (an_a.ablation.mse_attention + an_b.ablation.mse_attention) / 2
    )
    # the deletion null permutes windows within each period and adds the sums, draw by draw
    assert a.deletion and b.deletion and pooled.deletion
    expected = (a.deletion.matched_sums + b.deletion.matched_sums).mean() / 240
    assert pooled.deletion.matched_change_mean == pytest.approx(expected)
    assert pooled.deletion.top_k_change == pytest.approx((an_a.deletion.top_k_change + an_b.deletion.top_k_change) / 2)


def test_a_period_s_evidence_is_reused_only_for_the_same_code_checkpoint_and_hours(tmp_path):
    data = tiny_data(n_test=120)
    fp = evidence_fingerprint("3", "abc", data)
    assert fp == evidence_fingerprint("3", "abc", tiny_data(n_test=120))  # the same hours read again
    corrected = data.test.raw_ret.copy()
    corrected[57] += 1e-6  # a corrected candle inside the period
    changed = {
        evidence_fingerprint("4", "abc", data),  # the analysis code
        evidence_fingerprint("3", "abd", data),  # the checkpoint
        evidence_fingerprint("3", "abc", replace(data, test=replace(data.test, raw_ret=corrected))),
        evidence_fingerprint("3", "abc", tiny_data(n_test=121)),  # one more logged hour
    }
    assert fp not in changed and len(changed) == 4
    _, ev = _analysed_period(tmp_path, 0, "2025-12", 0)
    path = tmp_path / "2025-12" / "attention_lstm.npz"
    assert stored_fingerprint(path) == ""  # made without one: never reused
    save_evidence(path, replace(ev, fingerprint=fp))
    assert stored_fingerprint(path) == fp and load_evidence(path).fingerprint == fp
    path.write_bytes(b"truncated")
    assert stored_fingerprint(path) == ""  # an unreadable file is analysed again, not trusted
    assert stored_fingerprint(tmp_path / "missing.npz") == ""


def _evidence(attention: np.ndarray, control: np.ndarray, period: str) -> PeriodEvidence:
    an = describe(attention, {"untrained": {"attention": control}}, resamples=200)
    reading = PeriodReading(
        period,
        f"{period}.pt",
        len(attention),
        "a",
        "b",
        an.verdict.peak_hour,
        an.verdict.peak_lift,
        an.verdict.peak_lift_ci,
        an.verdict.concentrated,
        None,
        None,
    )
    return PeriodEvidence(
        reading=reading,
        tensors={"attention": attention},
        controls={"untrained": {"attention": control}},
        end_ts=np.arange(len(attention)).astype("datetime64[h]").astype("datetime64[s]"),
        trailing_vol=np.random.default_rng(0).random(len(attention)),
    )


def test_pooled_concentration_is_found_when_it_is_there_and_not_when_it_is_not():
    flat = noisy(300, 9)
    peaked = pool(
        [_evidence(noisy(300, 0, peak=24), flat, "2025-11"), _evidence(noisy(300, 1, peak=24), flat, "2025-12")]
    )
    assert peaked.verdict.concentrated and peaked.verdict.peak_hour == 24
    uniform = pool([_evidence(noisy(300, 2), flat, "2025-11"), _evidence(noisy(300, 3), flat, "2025-12")])
    assert not uniform.verdict.concentrated
    # the spread: one month peaked, one flat; the report says how many periods agree
    mixed = pool([_evidence(noisy(300, 0, peak=24), flat, "2025-11"), _evidence(noisy(300, 3), flat, "2025-12")])
    text = "\n".join(period_spread_lines({"attention_lstm": mixed}))
    assert "concentrated above its controls in 1 of 2" in text
    assert "| attention_lstm | 2025-11 | 300 | 24 |" in text and "| attention_lstm | 2025-12 | 300 |" in text


def test_the_report_names_every_period_model_and_its_hours():
    flat = noisy(100, 9)
    parts = [_evidence(noisy(100, i), flat, p) for i, p in enumerate(["2025-11", "2025-12"])]
    analyses = {"attention_lstm": pool(parts), "volatility": pool(parts)}
    source = period_attention_source(analyses)
    assert source.startswith("**Models and hours read:** the forecast periods' models of 2025-11 to 2025-12 (2 ")
    assert "200 hours" in source and "| 2025-11 | 100 (a to b) | `2025-11.pt` | `2025-11.pt` |" in source
    # not pooled over periods: no such sentence (the caller names the model assets' own split instead)
    assert period_attention_source({"attention_lstm": replace(analyses["attention_lstm"], periods=[])}) == ""
