"""The analysis' verdicts from intervals, every pool and head, seeds, shared controls, JSON."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workflows.attention import analysis as an_mod
from workflows.attention import sanity
from workflows.attention.analysis import AttentionAnalysis, analyse, analyse_all, describe, pool_widths
from workflows.ml.checkpoints import Checkpoint
from workflows.ml.models import ArchConfig, Ensemble
from workflows.ml.training import TrainConfig, predict
from workflows.records import from_record, to_record
from workflows_tests.unit.test_attention_sanity import softmax_rows, tiny_data

T = 48


pytestmark = pytest.mark.usefixtures("one_thread")


def noisy(n: int, seed: int, peak: int | None = None, amp: float = 3.0, width: int = T) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(0, 0.3, (n, width))
    if peak is not None:
        logits[:, width - peak] += amp
    return softmax_rows(logits)


def test_concentrated_only_when_the_interval_clears_uniform_and_the_controls():
    flat_control = {"untrained": {"attention": noisy(500, 1)}}
    peaked = describe(noisy(500, 0, peak=24), flat_control, resamples=300)
    assert peaked.verdict.concentrated and peaked.verdict.peak_hour == 24
    lo, hi = peaked.verdict.peak_lift_ci
    assert lo <= peaked.verdict.peak_lift <= hi and lo > peaked.verdict.control_lift > 1.0
    flat = describe(noisy(500, 2), flat_control, resamples=300)
    assert not flat.verdict.concentrated and flat.verdict.peak_lift_ci[0] <= 1.0
    # a control peaked just as strongly: the model's interval does not clear the control's
    same = describe(noisy(500, 0, peak=24), {"shuffled_targets": {"attention": noisy(500, 3, peak=24)}}, resamples=300)
    assert not same.verdict.concentrated and same.verdict.control_lift > same.verdict.peak_lift_ci[0]
    # no controls: the bound is uniform
    alone = describe(noisy(500, 0, peak=24), {}, resamples=300)
    assert alone.verdict.control_lift == 1.0 and alone.verdict.concentrated


def test_pools_are_lifted_against_the_hours_they_see():
    torch.manual_seed(0)
    model = ArchConfig("query_attention_lstm", 3, {"hidden": 16, "d_attn": 8, "scales": [6, 24, 48]}).build()
    scale = predict(model, np.random.default_rng(0).normal(size=(300, T, 3)).astype(np.float32))["scale_attention"]
    assert pool_widths(scale) == [6, 24, 48]
    pools = describe(scale[:, 2], {}, scale_attention=scale, resamples=200).pools
    assert [p.hours for p in pools] == [6, 24, 48]
    assert pools[0].peak_lift < 2  # an untrained 6 h pool is near 1/6 per hour, not 8x 1/48
    # known answers: the 6 h pool exactly uniform over its hours, the 24 h pool peaked 10 h ago
    n = 400
    s = np.zeros((n, 3, T))
    s[:, 0, -6:] = 1 / 6
    s[:, 1, -24:] = noisy(n, 4, peak=10, width=24)
    s[:, 2] = noisy(n, 5)
    ctrl = np.zeros((n, 3, T))
    ctrl[:, 0, -6:], ctrl[:, 1, -24:], ctrl[:, 2] = noisy(n, 6, width=6), noisy(n, 7, width=24), noisy(n, 8)
    pools = describe(
        s[:, 2], {"untrained": {"attention": ctrl[:, 2], "scale_attention": ctrl}}, scale_attention=s, resamples=300
    ).pools
    six, day, full = pools
    assert six.name == "6 h pool" and six.peak_lift == pytest.approx(1.0) and not six.concentrated
    assert day.hours == 24 and day.peak_hour == 10 and day.concentrated
    assert day.peak_lift == pytest.approx(s[:, 1, T - 10].mean() * 24)
    assert set(day.bootstrap.bucket_lifts) == {"0-12h", "12-24h"}
    assert not full.concentrated


def test_every_head_gets_a_lift_interval_against_the_same_control_head():
    n = 400
    maps = np.stack([noisy(n, 10, peak=3), noisy(n, 11), noisy(n, 12, peak=30), noisy(n, 13)], axis=1)
    maps = maps.reshape(n, 2, 2, T)  # (N, layers, heads, T)
    ctrl = np.stack([noisy(n, 14 + i) for i in range(4)], axis=1).reshape(n, 2, 2, T)
    heads = describe(
        maps[:, -1].mean(axis=1),
        {"untrained": {"attention": ctrl[:, -1].mean(axis=1), "attention_maps": ctrl}},
        attention_maps=maps,
        resamples=300,
    ).heads
    assert [(h.layer, h.head, h.name) for h in heads] == [
        (1, 1, "L1 H1"),
        (1, 2, "L1 H2"),
        (2, 1, "L2 H1"),
        (2, 2, "L2 H2"),
    ]
    assert [h.concentrated for h in heads] == [True, False, True, False]
    assert heads[0].peak_hour == 3 and heads[2].peak_hour == 30
    assert all(h.control_bound > 1.0 for h in heads)


def test_seed_spread_per_member():
    n = 400
    members = np.stack([noisy(n, 20 + m, peak=24 if m < 3 else None) for m in range(5)], axis=1)
    sp = describe(
        members.mean(axis=1),
        {"untrained": {"attention": noisy(n, 30)}},
        seed_attention=members,
        seed_source="five seeds",
        resamples=300,
    ).seed_spread
    assert sp.source == "five seeds" and len(sp.members) == 5
    assert sp.peak_hours[:3] == [24, 24, 24] and sp.concentrated == 3


def checkpoint(model: torch.nn.Module, arch, data) -> Checkpoint:
    return Checkpoint(
        model=model.eval(),
        arch=arch,
        scaler=data.scaler,
        window_spec=data.spec_dict(),
        data_version=data.data_version,
        metrics={},
        train_config=TrainConfig(epochs=1, device="cpu", snapshot_every=0).to_dict(),
        snapshots=[],
        path=Path("unused.pt"),
        sha256="0" * 64,
    )


def test_analyse_all_shares_controls_and_seed_spread_and_writes_json(monkeypatch):
    trained = []
    real = sanity.train

    def counting(*args, **kwargs):
        trained.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sanity, "train", counting)
    data = tiny_data(n_test=100)
    arch = ArchConfig("query_attention_lstm", 3, {"hidden": 16, "d_attn": 8, "scales": [6, 24, 48]})
    torch.manual_seed(0)
    single = checkpoint(arch.build(), arch, data)
    ensemble = checkpoint(Ensemble([arch.build() for _ in range(3)]), [arch, arch, arch], data)
    tensors = {}
    for name, ckpt in (("attention_lstm", single), ("ensemble", ensemble)):
        out = predict(ckpt.model, data.test.x)
        tensors[name] = {k: out[k] for k in ("attention", "scale_attention", "member_attention") if k in out}
    results = analyse_all({"attention_lstm": (single, data), "ensemble": (ensemble, data)}, tensors)
    assert len(trained) == 1  # one shuffled-target control for the shared architecture and config
    lstm, ens = results["attention_lstm"].analysis, results["ensemble"].analysis
    assert isinstance(lstm, AttentionAnalysis)
    assert not lstm.control_setup.reused and ens.control_setup.reused
    assert lstm.control_setup.key == ens.control_setup.key
    assert "ensemble's 3 members" in lstm.seed_spread.source and len(lstm.seed_spread.members) == 3
    assert "its own 3 members" in ens.seed_spread.source
    assert [p.hours for p in lstm.pools] == [6, 24, 48] and set(lstm.controls) == {"untrained", "shuffled_targets"}
    assert lstm.deletion.draws == 200 and lstm.ablation is not None and lstm.attribution.windows == 100
    # Dagster's I/O manager stores JSON records (workflows.records), read back by the type hints
    for an in (lstm, ens):
        text = json.dumps(to_record(an), allow_nan=True)
        back = from_record(json.loads(text), AttentionAnalysis)
        assert isinstance(back, AttentionAnalysis) and back.verdict == an.verdict
        assert json.dumps(to_record(back), allow_nan=True) == text
    d = lstm.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["verdict"]["peak_lift_ci"] == list(lstm.verdict.peak_lift_ci)
    assert set(d) >= {
        "summary",
        "controls",
        "verdict",
        "bootstrap",
        "deletion",
        "ablation",
        "attribution",
        "pools",
        "heads",
        "seed_spread",
        "control_setup",
    }


def test_analyse_keeps_its_positional_interface_and_skips_controls_on_request():
    data = tiny_data(n_test=60)
    arch = ArchConfig("reference_lstm", 3, {"hidden": 16})
    torch.manual_seed(1)
    ckpt = checkpoint(arch.build(), arch, data)
    attention = predict(ckpt.model, data.test.x)["attention"]
    analysed = analyse(
        ckpt, data, attention, None, None, controls=False, attribution=False, seed=0, deletion_draws=30, resamples=200
    )
    result = analysed.analysis
    # the raw evidence comes back with it: no controls, no attribution, one reading per test window
    assert analysed.evidence.controls == {} and analysed.evidence.attribution is None
    assert len(analysed.evidence.end_ts) == len(data.test) and analysed.evidence.output == "ret"
    assert result.controls == {} and result.control_setup is None and result.attribution is None
    assert result.verdict.control_lift == 1.0 and result.seed_spread is None and result.heads == []
    assert result.verdict.faithful == result.deletion.faithful
    assert an_mod.Verdict.__dataclass_fields__.keys() >= {
        "concentrated",
        "peak_hour",
        "peak_lift",
        "peak_lift_ci",
        "control_lift",
        "relied_upon",
        "faithful",
    }


def test_attention_file_keeps_the_pools(tmp_path):
    from workflows.attention.extract import load_attention, save_attention

    n = 20
    scale = np.zeros((n, 3, T), dtype=np.float32)
    for j, s in enumerate((6, 24, 48)):
        scale[:, j, -s:] = 1 / s
    end_ts = np.arange(n).astype("datetime64[h]")
    path = save_attention(tmp_path / "m.npz", end_ts, scale[:, 2], scale_attention=scale)
    loaded = load_attention(path)
    assert set(loaded) == {"end_ts", "hours_ago", "attention", "scale_attention"}
    assert np.array_equal(loaded["scale_attention"], scale) and pool_widths(loaded["scale_attention"]) == [6, 24, 48]
