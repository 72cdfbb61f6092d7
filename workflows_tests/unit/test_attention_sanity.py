"""The faithfulness checks on models whose answer is known.

A recurrent model moves more when recent hours are deleted, whatever its attention
says; the position-matched deletion test must not credit a recency-shaped map for
that, and must credit a map that points, window by window, at the hour the output
reads.
"""

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from workflows.attention import sanity
from workflows.ml.models import ArchConfig, LastStateLSTM, ModelOutput
from workflows.ml.training import TrainConfig
from workflows.ml.windows import Scaler, Split, WindowData, WindowSpec

N, T, F = 200, 48, 3
FAST: dict[str, Any] = {"draws": 60, "random_draws": 40, "resamples": 300}


pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N, T, F)).astype(np.float32)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def recency_map(seed: int = 1) -> np.ndarray:
    """Weight decaying with hours ago, different in every window (noise)."""
    ago = np.arange(T, 0, -1)
    return softmax_rows(-ago / 4.0 + np.random.default_rng(seed).normal(0, 0.3, (N, T)))


class Pointer(nn.Module):
    """Output = feature 0 of the one hour whose feature 1 is largest: a different hour in every window."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        hour = x[:, :, 1].argmax(dim=1)
        return ModelOutput(ret=x[torch.arange(len(x)), hour, 0], attention=torch.full(x.shape[:2], 1 / x.shape[1]))


class FixedLag(nn.Module):
    """Output = mostly the hour 24 hours ago, a little of the most recent hour."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(ret=3 * x[:, -24, 0] + 0.1 * x[:, -1, 0], attention=torch.full(x.shape[:2], 1 / x.shape[1]))


def test_recency_map_on_a_model_without_attention_is_not_faithful():
    torch.manual_seed(0)
    model = LastStateLSTM(F, hidden=16)  # untrained, no attention at all
    d = sanity.deletion_test(model, inputs(), recency_map(), **FAST)
    # what the old test saw: the recent hours move an LSTM far more than uniformly random hours
    assert d.random_ratio > 3 and d.random_p_value < 0.05
    # against other windows' top hours (same positions) the map marks nothing
    assert d.matched_ratio == pytest.approx(1.0, abs=0.05) and d.matched_p_value > 0.05
    assert d.recency_ratio_ci[0] <= 1.0  # no better than deleting the 5 most recent hours
    assert not d.faithful and not d.positions_matter


def test_map_on_the_hour_the_output_reads_is_faithful():
    rng = np.random.default_rng(2)
    x = inputs()
    hot = rng.integers(0, T, N)
    x[np.arange(N), hot, 1] = 5.0  # the hour the pointer reads
    # decoys: in every window, the k hours with the largest inputs are others, which the output never reads
    for i in range(N):
        decoys = rng.choice(np.setdiff1d(np.arange(T), [hot[i]]), 5, replace=False)
        x[i, decoys, 2] = 9.0
    logits = rng.normal(0, 0.3, (N, T))
    logits[np.arange(N), hot] += 5.0
    d = sanity.deletion_test(Pointer(), x, softmax_rows(logits), **FAST)
    assert d.faithful and d.matched_p_value < 0.05 and d.matched_ratio > 5
    assert d.beats_size and d.size_ratio > 5
    assert d.positions_matter


class SizeReader(nn.Module):
    """Output = mean squared input over the window: it reads every hour alike and has no attention; the
    largest inputs move it most when deleted."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(ret=(x**2).mean(dim=(1, 2)), attention=torch.full(x.shape[:2], 1 / x.shape[1]))


def test_a_map_that_points_at_large_inputs_on_a_model_that_ignores_it_is_not_faithful():
    """The map puts its weight on each window's largest |input| hours: deleting them moves a size-driven
    model more than other windows' top positions (the matched test alone would call the map faithful),
    but no more than deleting the largest inputs does, which is all it is."""
    x = inputs(4) * np.random.default_rng(5).lognormal(0, 1, (N, T, 1)).astype(np.float32)  # uneven sizes
    size = np.abs(x).sum(axis=2)
    size_map = size / size.sum(axis=1, keepdims=True)  # weight in proportion to the size of the input
    d = sanity.deletion_test(SizeReader(), x, size_map, **FAST)
    assert d.matched_p_value < 0.05 and d.matched_ratio >= d.margin  # what used to pass as faithful
    assert d.size_ratio == pytest.approx(1.0, abs=0.05) and not d.beats_size
    assert not d.faithful


def test_fixed_lag_map_matters_by_position_but_the_matched_null_cannot_separate_it():
    """Every window's map peaks at 24 h; so does every matched window's: the matched null deletes the
    same hour (ratio 1, not faithful), while against recent and random hours the position matters."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 0.3, (N, T))
    logits[:, T - 24] += 4.0
    d = sanity.deletion_test(FixedLag(), inputs(), softmax_rows(logits), **FAST)
    assert d.matched_ratio == pytest.approx(1.0, abs=1e-3) and not d.faithful
    assert d.recency_ratio_ci[0] > 10 and d.random_ratio > 5 and d.positions_matter


class ReadsLag24UnlessUniform(LastStateLSTM):
    """Supports the ablation flag: with uniform weights it reads the mean of all hours."""

    def forward(self, x: torch.Tensor, uniform_attention: bool = False) -> ModelOutput:
        ret = x[:, :, 0].mean(dim=1) if uniform_attention else x[:, -24, 0]
        return ModelOutput(ret=ret, attention=torch.full(x.shape[:2], 1 / x.shape[1]))


def test_uniform_ablation_known_answers():
    x = inputs()
    y = x[:, -24, 0] + 0.1 * np.random.default_rng(4).normal(size=N).astype(np.float32)
    relied = sanity.uniform_ablation(ReadsLag24UnlessUniform(F, hidden=4), x, y, resamples=300)
    assert relied.relied_upon and relied.relative_change_ci[0] > 1  # uniform weights: MSE ~ 1 vs ~ 0.01
    torch.manual_seed(0)
    ignores = sanity.uniform_ablation(LastStateLSTM(F, hidden=16), x, y, resamples=300)
    assert ignores.relative_change == pytest.approx(0.0, abs=1e-9) and not ignores.relied_upon
    transformer = ArchConfig("transformer", F, {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 16}).build()
    assert sanity.uniform_ablation(transformer, x, y) is None


def tiny_data(n_train: int = 120, n_test: int = 40) -> WindowData:
    rng = np.random.default_rng(5)

    def split(n: int, start: int) -> Split:
        ret = rng.normal(size=n).astype(np.float32)
        return Split(
            x=rng.normal(size=(n, T, F)).astype(np.float32),
            ret=ret,
            vol=np.abs(ret),
            direction=rng.integers(0, 3, n),
            end_ts=np.arange(start, start + n).astype("datetime64[h]"),
            raw_ret=ret.astype(np.float64),
        )

    return WindowData(
        WindowSpec(), Scaler([0.0] * F, [1.0] * F, 1.0), split(n_train, 0), split(30, 500), split(n_test, 1000), "tiny"
    )


def test_shuffled_target_control_trains_on_the_most_recent_windows_only(monkeypatch):
    seen = {}
    real_train = sanity.train

    def spy(model, data, config):
        seen["end_ts"], seen["ret"] = data.train.end_ts, data.train.ret
        return real_train(model, data, config)

    monkeypatch.setattr(sanity, "train", spy)
    data = tiny_data()
    arch = ArchConfig("query_attention_lstm", F, {"hidden": 16, "d_attn": 8, "scales": [6, 24, 48]})
    out = sanity.shuffled_target_outputs(arch, data, TrainConfig(epochs=1, device="cpu"), max_train_windows=50)
    assert len(seen["end_ts"]) == 50 and (seen["end_ts"] == data.train.end_ts[-50:]).all()
    assert sorted(seen["ret"]) == sorted(data.train.ret[-50:]) and not (seen["ret"] == data.train.ret[-50:]).all()
    assert out["attention"].shape == (40, T) and out["scale_attention"].shape == (40, 3, T)
    untrained = sanity.untrained_outputs(
        ArchConfig("transformer", F, {"d_model": 16, "n_layers": 2, "n_heads": 4, "d_ff": 16}), data.test.x
    )
    assert untrained["attention_maps"].shape == (40, 2, 4, T)
