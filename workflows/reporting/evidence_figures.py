"""The forecast-evidence figure: skill against the zero forecast per fold, with intervals."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from workflows.evaluation.evidence import Evaluation
from workflows.io import write_with


def fold_skill_figure(ev: Evaluation, order: list[str], path: Path) -> tuple[Path, int]:
    """One marker per (fold, forecaster) at its skill vs the zero forecast with the 95% interval,
    and the pooled skill with its interval at the right; returns (path, forecasters drawn)."""
    names = [n for n in order if n in ev.returns]
    folds = ev.folds
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * (len(folds) + 1) + 3), 5.5), dpi=100)
    width = 0.8 / max(len(names), 1)
    cmap = plt.get_cmap("tab10")
    for j, name in enumerate(names):
        x = np.arange(len(folds) + 1) + (j - (len(names) - 1) / 2) * width
        skill = [100 * f.skill_vs_zero[name] for f in folds] + [100 * ev.returns[name].skill_vs_zero]
        ci = [f.skill_ci[name] for f in folds] + [ev.returns[name].skill_vs_zero_ci]
        lo = [s - 100 * c[0] for s, c in zip(skill, ci)]
        hi = [100 * c[1] - s for s, c in zip(skill, ci)]
        ax.errorbar(x, skill, yerr=[lo, hi], fmt="o", ms=4, capsize=2, color=cmap(j % 10), label=name)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(len(folds) - 0.5, color="grey", lw=0.8, ls=":")
    labels = [f"fold {f.fold}\n{f.test_start[:10]}" for f in folds] + [f"pooled\n{ev.hours:,} h"]
    ax.set_xticks(np.arange(len(folds) + 1), labels, fontsize=8)
    ax.set_ylabel("skill vs zero-return forecast, % (95% interval)")
    ax.set_title("Next-hour return: skill per monthly period and pooled (above 0 = better than forecasting no move)")
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path, len(names)
