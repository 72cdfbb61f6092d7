"""Report figures (matplotlib, Agg backend). Each function writes one PNG and returns
its path and the number of panels drawn."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from workflows.attention import metrics as am
from workflows.io import write_with
from workflows.ml.training_summary import EpochLoss

DPI = 100
ANALYSIS_SIZE = (18, 13)  # inches -> 1800 x 1300 px


def _hours(t: int) -> np.ndarray:
    return am.hours_ago(t)


def attention_analysis_figure(
    attention: np.ndarray,
    summary: am.AttentionSummary,
    title: str,
    path: Path,
    controls: dict[str, am.AttentionSummary] | None = None,
) -> tuple[Path, int]:
    """The reference's seven panels for one model's test-window attention (N, T)."""
    n, t = attention.shape
    ago = _hours(t)
    profile = attention.mean(axis=0)
    uniform = 1.0 / t
    fig = plt.figure(figsize=ANALYSIS_SIZE, dpi=DPI)
    grid = fig.add_gridspec(3, 3, hspace=0.45, wspace=0.28)
    axes = []

    ax = fig.add_subplot(grid[0, 0])
    ax.bar(ago, profile, color="tab:blue", width=0.85)
    ax.axhline(uniform, color="k", ls="--", lw=1, label=f"uniform 1/{t}")
    ax.set(title="1. Mean attention by hours ago", xlabel="hours before the predicted hour", ylabel="weight")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    axes.append(ax)

    ax = fig.add_subplot(grid[0, 1])
    idx = np.linspace(0, n - 1, min(6, n)).astype(int)
    for i in idx:
        ax.plot(ago, attention[i], lw=1, alpha=0.8)
    ax.axhline(uniform, color="k", ls="--", lw=1)
    ax.set(title=f"2. Individual test windows ({len(idx)})", xlabel="hours ago", ylabel="weight")
    ax.invert_xaxis()
    axes.append(ax)

    ax = fig.add_subplot(grid[0, 2])
    cumulative = np.cumsum(profile[::-1])
    ax.plot(np.arange(1, t + 1), cumulative, color="tab:blue", label="model")
    ax.plot(np.arange(1, t + 1), np.arange(1, t + 1) / t, color="k", ls="--", lw=1, label="uniform")
    for q, c in ((0.5, "tab:orange"), (0.8, "tab:red")):
        ax.axhline(q, color=c, lw=0.8)
        k = int(np.searchsorted(cumulative, q - 1e-12) + 1)
        ax.annotate(f"{int(q * 100)}% by {k} h", (k, q), textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set(title="3. Cumulative attention from the most recent hour", xlabel="hours ago", ylabel="share")
    ax.legend(fontsize=8)
    axes.append(ax)

    ax = fig.add_subplot(grid[1, :2])
    im = ax.imshow(attention.T, aspect="auto", cmap="viridis", origin="lower", extent=(0, n, t + 0.5, 0.5))
    ax.set(title="4. Attention over test windows", xlabel="test window (time order)", ylabel="hours ago")
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    axes.append(ax)

    ax = fig.add_subplot(grid[1, 2])
    hours, weights = summary.top_hours, summary.top_weights
    ax.barh([f"{h} h ago" for h in hours][::-1], weights[::-1], color="tab:green")
    ax.axvline(uniform, color="k", ls="--", lw=1)
    ax.set(title="5. Top hours (mean profile)", xlabel="mean weight")
    axes.append(ax)

    ax = fig.add_subplot(grid[2, 0])
    shares = am.bucket_shares(profile)
    uniform_shares = am.uniform_bucket_shares(t)
    x = np.arange(len(shares))
    ax.bar(x - 0.2, [shares[k][0] for k in shares], 0.4, label="model")
    ax.bar(x + 0.2, [uniform_shares[k] for k in shares], 0.4, label="uniform", color="lightgray")
    for i, k in enumerate(shares):
        ax.annotate(
            f"lift {shares[k][0] / uniform_shares[k]:.2f}",
            (i, max(shares[k][0], uniform_shares[k])),
            ha="center",
            textcoords="offset points",
            xytext=(0, 3),
            fontsize=8,
        )
    ax.set_xticks(x, [f"{k} ago" for k in shares])
    ax.set(title="6. Time buckets against uniform", ylabel="share")
    ax.legend(fontsize=8)
    axes.append(ax)

    ax = fig.add_subplot(grid[2, 1:])
    ax.axis("off")
    lines = [
        f"windows: {summary.windows}    hours per window: {t}",
        f"normalised entropy (median): {summary.normalised_entropy.median:.4f}   "
        f"(IQR {summary.normalised_entropy.p25:.4f} - {summary.normalised_entropy.p75:.4f})",
        f"Gini (median): {summary.gini.median:.4f}   effective hours: {summary.effective_hours.median:.1f} of {t}",
        f"max weight (median): {summary.max_weight.median:.4f}   (uniform {uniform:.4f})",
        f"mean lag: {summary.mean_lag.median:.1f} h   hours to 50% / 80%: "
        f"{summary.hours_to_50.median:.0f} / {summary.hours_to_80.median:.0f}",
        f"profile max lift over uniform: {summary.profile_max_lift:.2f}x",
    ]
    for name, ctrl in (controls or {}).items():
        lines.append(
            f"control '{name}': entropy {ctrl.normalised_entropy.median:.4f}, "
            f"profile max lift {ctrl.profile_max_lift:.2f}x, top hour {ctrl.top_hours[0]} h"
        )
    ax.text(0.0, 1.0, "7. Statistical summary\n\n" + "\n".join(lines), va="top", family="monospace", fontsize=10)
    axes.append(ax)

    fig.suptitle(title, fontsize=14)
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI))
    plt.close(fig)
    return path, len(axes)


def transformer_heads_figure(maps: np.ndarray, path: Path, title: str) -> tuple[Path, int]:
    """Mean last-query attention per layer (rows) and head (columns): maps is (N, L, H, T)."""
    _, layers, heads, t = maps.shape
    mean = maps.mean(axis=0)
    fig, axes = plt.subplots(
        layers, heads, figsize=(2.2 * heads, 1.9 * layers + 0.8), dpi=DPI, squeeze=False, sharex=True, sharey=True
    )
    ago = _hours(t)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            ax.bar(ago, mean[layer, head], width=1.0, color="tab:purple")
            ax.axhline(1 / t, color="k", ls="--", lw=0.6)
            ax.set_title(f"L{layer + 1} H{head + 1}", fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].invert_xaxis()  # shared x: newest hour on the right
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI))
    plt.close(fig)
    return path, layers * heads


def training_figure(
    histories: dict[str, Sequence[EpochLoss]], snapshots: list[tuple[int, np.ndarray]], snapshot_model: str, path: Path
) -> tuple[Path, int]:
    """Training and validation loss per model, and the attention snapshots over epochs."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5), dpi=DPI)
    for name, history in histories.items():
        epochs = [h.epoch for h in history]
        line = ax1.plot(epochs, [h.val_loss for h in history], label=f"{name} (validation)")[0]
        ax1.plot(epochs, [h.train_loss for h in history], ls=":", color=line.get_color())
    ax1.set(title="Loss per epoch (dotted: training)", xlabel="epoch", ylabel="loss (scaled units)")
    ax1.legend(fontsize=7)
    if snapshots:
        epochs = [e for e, _ in snapshots]
        grid = np.stack([a.mean(axis=0) for _, a in snapshots])  # (snapshots, T)
        t = grid.shape[1]
        im = ax2.imshow(
            grid, aspect="auto", cmap="magma", origin="lower", extent=(t + 0.5, 0.5, epochs[0] - 0.5, epochs[-1] + 0.5)
        )
        fig.colorbar(im, ax=ax2)
        ax2.set(
            title=f"{snapshot_model}: mean attention on a fixed validation batch", xlabel="hours ago", ylabel="epoch"
        )
    else:
        ax2.axis("off")
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI))
    plt.close(fig)
    return path, 2


def comparison_figure(profiles: dict[str, np.ndarray], path: Path) -> tuple[Path, int]:
    """Mean attention profiles of several models and controls on one axis."""
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=DPI)
    for name, profile in profiles.items():
        t = len(profile)
        ax.plot(
            _hours(t),
            profile,
            label=name,
            lw=1.5 if "control" not in name else 1,
            ls="-" if "control" not in name else ":",
        )
    ax.axhline(1 / t, color="k", ls="--", lw=1, label="uniform")
    ax.invert_xaxis()
    ax.set(
        title="Mean attention by hours ago: models and controls",
        xlabel="hours before the predicted hour",
        ylabel="weight",
    )
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI))
    plt.close(fig)
    return path, 1
