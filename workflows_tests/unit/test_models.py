import numpy as np
import pytest
import torch

from workflows.ml.models import (
    REFERENCE_TRANSFORMER_PARAMS,
    ArchConfig,
    AttentionTransformer,
    Ensemble,
    Heads,
    LastStateLSTM,
    QueryAttentionLSTM,
    ReferenceAttentionLSTM,
    TaskHeads,
    count_parameters,
)

B, T, F = 5, 48, 3
ALL_HEADS = Heads(gaussian=True, volatility=True, direction=True)


def small_models(heads=Heads()):
    return {
        "reference": ReferenceAttentionLSTM(F, hidden=8, heads=heads),
        "query": QueryAttentionLSTM(F, hidden=8, d_attn=4, heads=heads),
        "multiscale": QueryAttentionLSTM(F, hidden=8, d_attn=4, scales=(6, 24, 48), heads=heads),
        "last_state": LastStateLSTM(F, hidden=8, heads=heads),
        "transformer": AttentionTransformer(F, d_model=16, n_layers=2, n_heads=8, d_ff=16, mlp=(8,), heads=heads),
    }


@pytest.mark.parametrize("name", list(small_models()))
def test_shapes_and_attention_rows_sum_to_one(name):
    torch.manual_seed(0)
    model = small_models(ALL_HEADS)[name].eval()
    out = model(torch.randn(B, T, F))
    assert out.ret.shape == (B,)
    assert out.attention.shape == (B, T)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(B))
    assert (out.attention >= 0).all()
    assert out.log_var.shape == (B,) and out.vol.shape == (B,) and (out.vol > 0).all()
    assert out.direction_logits.shape == (B, 3)


def test_transformer_returns_per_layer_per_head_maps():
    model = AttentionTransformer(F, d_model=16, n_layers=3, n_heads=8, d_ff=16, mlp=(8,)).eval()
    out = model(torch.randn(B, T, F))
    assert out.attention_maps.shape == (B, 3, 8, T)
    torch.testing.assert_close(out.attention_maps.sum(-1), torch.ones(B, 3, 8))


def test_multiscale_pools_only_see_their_hours():
    model = QueryAttentionLSTM(F, hidden=8, d_attn=4, scales=(6, 24, 48)).eval()
    out = model(torch.randn(B, T, F))
    assert out.scale_attention.shape == (B, 3, T)
    assert torch.all(out.scale_attention[:, 0, : T - 6] == 0)
    assert torch.all(out.scale_attention[:, 1, : T - 24] == 0)
    torch.testing.assert_close(out.scale_attention.sum(-1), torch.ones(B, 3))


def test_ensemble_mean_and_spread():
    members = [QueryAttentionLSTM(F, hidden=8, d_attn=4, heads=Heads(gaussian=True)) for _ in range(5)]
    for i, m in enumerate(members):
        torch.manual_seed(i)
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.3)
    ens = Ensemble(members).eval()
    x = torch.randn(B, T, F)
    out = ens(x)
    each = torch.stack([m(x).ret for m in members])
    torch.testing.assert_close(out.ret, each.mean(0))
    torch.testing.assert_close(out.member_spread, each.std(0, unbiased=False))
    assert out.member_attention.shape == (B, 5, T)
    # predictive variance covers both the members' variance and their disagreement
    assert torch.all(out.log_var.exp() >= out.member_spread**2)


def test_full_size_transformer_parameter_count(capsys):
    model = AttentionTransformer(F)  # d_model 256, 4 layers, 8 heads, MLP 256-128-64-1
    params = count_parameters(model)
    print(f"full Transformer: {params:,} parameters for {F} features; reference: {REFERENCE_TRANSFORMER_PARAMS:,}")
    # same order of magnitude as the reference's 4.26M; the exact figure depends on d_ff
    assert 2_000_000 < params < 6_000_000


def test_arch_config_round_trip():
    cfg = ArchConfig("query_attention_lstm", 3, {"hidden": 8, "d_attn": 4, "scales": [6, 48]}, {"volatility": True})
    again = ArchConfig.from_dict(cfg.to_dict()).build()
    heads = again.get_submodule("heads")
    assert again.scales == (6, 48) and isinstance(heads, TaskHeads) and heads.vol is not None
    assert np.isclose(count_parameters(again), count_parameters(cfg.build()))
