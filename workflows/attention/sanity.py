"""Checks that decide whether a model's attention means anything.

* Controls: the same architecture untrained, and trained on shuffled targets.
  Attention that looks like theirs says nothing about the data.
* Uniform ablation: the error change when the attention is replaced by uniform
  weights. Attention the model relies on costs accuracy when removed.
* Deletion: zeroing (the training mean, in scaled units) the top-k attended hours
  against k random hours; faithful attention moves the prediction more.
* Attribution agreement: Spearman rank correlation between attention and
  integrated gradients per hour (Captum), median over windows.
* Ensemble spread: how much the members' attention metrics differ by seed.
"""

from dataclasses import replace

import numpy as np
import torch
from scipy import stats
from torch import nn

from workflows.attention import metrics as am
from workflows.ml.models import ArchConfig, supports_uniform_ablation
from workflows.ml.training import TrainConfig, predict, train
from workflows.ml.windows import WindowData


def untrained_attention(arch: ArchConfig, x: np.ndarray, seed: int = 0) -> np.ndarray:
    torch.manual_seed(seed)
    return predict(arch.build(), x)["attention"]


def shuffled_target_attention(arch: ArchConfig, data: WindowData, config: TrainConfig, seed: int = 0) -> np.ndarray:
    """Attention on the test windows of a model trained on permuted training targets."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data.train))
    shuffled_train = replace(
        data.train, ret=data.train.ret[perm], vol=data.train.vol[perm], direction=data.train.direction[perm]
    )
    shuffled = replace(data, train=shuffled_train)
    torch.manual_seed(seed)
    result = train(arch.build(), shuffled, replace(config, snapshot_every=0, seed=seed))
    return predict(result.model, data.test.x)["attention"]


@torch.no_grad()
def uniform_ablation(model: nn.Module, x: np.ndarray, y: np.ndarray) -> dict | None:
    """MSE with the model's attention and with uniform attention (scaled target units)."""
    if not supports_uniform_ablation(model):
        return None
    model.eval()
    xt = torch.as_tensor(x)
    with_attention = model(xt).ret.numpy()
    uniform = model(xt, uniform_attention=True).ret.numpy()
    mse_a = float(np.mean((with_attention - y) ** 2))
    mse_u = float(np.mean((uniform - y) ** 2))
    return {"mse_attention": mse_a, "mse_uniform": mse_u, "relative_change": (mse_u - mse_a) / mse_a}


@torch.no_grad()
def deletion_test(model: nn.Module, x: np.ndarray, attention: np.ndarray, k: int = 5, draws: int = 100, seed: int = 0) -> dict:
    """Mean |prediction change| after zeroing the top-k attended hours vs k random hours."""
    model.eval()
    rng = np.random.default_rng(seed)
    base = model(torch.as_tensor(x)).ret.numpy()
    n, t = attention.shape
    top = np.argsort(-attention, axis=1)[:, :k]
    x_top = x.copy()
    x_top[np.arange(n)[:, None], top] = 0.0
    top_change = float(np.mean(np.abs(model(torch.as_tensor(x_top)).ret.numpy() - base)))
    random_changes = []
    for _ in range(draws):
        pick = np.argsort(rng.random((n, t)), axis=1)[:, :k]
        x_r = x.copy()
        x_r[np.arange(n)[:, None], pick] = 0.0
        random_changes.append(float(np.mean(np.abs(model(torch.as_tensor(x_r)).ret.numpy() - base))))
    random_changes = np.asarray(random_changes)
    return {
        "k": k,
        "top_k_change": top_change,
        "random_k_change_mean": float(random_changes.mean()),
        "random_k_change_p95": float(np.percentile(random_changes, 95)),
        "ratio": top_change / max(float(random_changes.mean()), 1e-12),
        # share of random draws that moved the prediction at least as much as the top-k deletion
        "p_value": float((np.sum(random_changes >= top_change) + 1) / (draws + 1)),
    }


def attribution_agreement(model: nn.Module, x: np.ndarray, attention: np.ndarray, max_windows: int = 128) -> dict:
    """Median Spearman correlation between attention and integrated-gradients importance per hour."""
    from captum.attr import IntegratedGradients

    model.eval()
    n = min(len(x), max_windows)
    xt = torch.as_tensor(x[:n]).requires_grad_(True)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return model(inputs).ret

    ig = IntegratedGradients(forward)
    attributions = ig.attribute(xt, baselines=torch.zeros_like(xt), n_steps=32, internal_batch_size=8 * n)
    importance = attributions.detach().abs().sum(dim=-1).numpy()  # (n, T)
    rhos = []
    for a, imp in zip(attention[:n], importance):
        if np.std(a) < 1e-12 or np.std(imp) < 1e-12:
            continue
        rhos.append(stats.spearmanr(a, imp).statistic)
    mean_importance = importance.mean(axis=0)
    top_hour = int(importance.shape[1] - int(mean_importance.argmax()))
    return {
        "windows": n,
        "median_spearman": float(np.median(rhos)) if rhos else float("nan"),
        "windows_with_variation": len(rhos),
        "top_attributed_hour": top_hour,
        "mean_importance": (mean_importance / mean_importance.sum()).tolist(),
    }


def ensemble_spread(member_attention: np.ndarray) -> dict:
    """Spread of attention metrics across members: member_attention is (N, members, T)."""
    per_member = []
    for m in range(member_attention.shape[1]):
        s = am.summarise(member_attention[:, m])
        per_member.append(
            {"normalised_entropy": s["normalised_entropy"]["median"], "max_weight": s["max_weight"]["median"],
             "top_hour": s["top_hours"][0], "profile_max_lift": s["profile_max_lift"]}
        )
    keys = ("normalised_entropy", "max_weight", "profile_max_lift")
    return {
        "members": per_member,
        **{f"{k}_std": float(np.std([p[k] for p in per_member])) for k in keys},
        "top_hours": [p["top_hour"] for p in per_member],
    }
