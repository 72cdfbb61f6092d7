"""The calibration figures: nominal against observed interval coverage (before and after conformal
calibration), and the reliability diagram of the direction probabilities."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from workflows.evaluation.evidence import COVERAGE_TOLERANCE, Evaluation
from workflows.io import write_with

DPI = 100


def coverage_figure(ev: Evaluation, order: list[str], path: Path) -> tuple[Path, int] | None:
    """Observed against nominal coverage per model at 80% and 95%: hollow markers before calibration, filled
    after, the diagonal and its tolerance band. Returns (path, models drawn); None when no model has an interval."""
    names = [n for n in order if n in ev.returns and ev.returns[n].calibration]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(11, 6), dpi=DPI)
    cmap = plt.get_cmap("tab10")
    grid = np.linspace(0.7, 1.0, 2)
    ax.plot(grid, grid, color="black", lw=0.8, label="observed = nominal")
    ax.fill_between(
        grid, grid - COVERAGE_TOLERANCE, grid + COVERAGE_TOLERANCE, color="grey", alpha=0.2, label="±2 points"
    )
    lowest = 0.7
    for j, name in enumerate(names):
        cal = ev.returns[name].calibration
        levels = sorted(cal)
        nominal = np.array([pct / 100 for pct in levels])
        offset = (j - (len(names) - 1) / 2) * 0.004  # side by side, not on top of each other
        before = np.array([cal[p].before.observed for p in levels])
        after = np.array([cal[p].after.observed for p in levels])
        color = cmap(j % 10)
        ax.plot(nominal + offset, before, "o", mfc="none", color=color, ms=7, label=f"{name}: own interval")
        ax.plot(nominal + offset, after, "o", color=color, ms=7, label=f"{name}: conformal ({cal[levels[0]].scale})")
        for x, b, a in zip(nominal + offset, before, after):
            ax.annotate("", (x, a), (x, b), arrowprops={"arrowstyle": "->", "color": color, "lw": 0.8})
        lowest = min(lowest, float(before.min()), float(after.min()))
    ax.set_xlim(0.75, 1.0)
    ax.set_ylim(max(0.0, lowest - 0.05), 1.0)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage of the evaluated hours")
    ax.set_title("Next-hour return intervals: coverage before and after calibration")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path, len(names)


def reliability_figure(ev: Evaluation, order: list[str], path: Path) -> tuple[Path, int] | None:
    """Reliability diagram of the direction probabilities: one panel per class, the observed frequency of
    the class against the mean forecast probability per bin (marker area: hours), per model, with the
    diagonal and the base rate. Returns (path, panels drawn); None when no model gives probabilities."""
    names = [n for n in order if n in ev.probabilities]
    if not names:
        return None
    classes = list(ev.probabilities[names[0]].reliability)
    fig, axes = plt.subplots(1, len(classes), figsize=(5 * len(classes), 5), dpi=DPI, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for k, (ax, cls) in enumerate(zip(axes[0], classes)):
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, label="perfectly reliable")
        for j, name in enumerate(names):
            pc = ev.probabilities[name]
            bins = pc.reliability.get(cls, [])
            if not bins:
                continue
            x = [b.mean_forecast for b in bins]
            y = [b.observed_frequency for b in bins]
            size = [20 + 200 * b.count / pc.n for b in bins]
            color = cmap(j % 10)
            ax.plot(x, y, "-", color=color, lw=0.8)
            ax.scatter(x, y, s=size, color=color, label=name, zorder=3)
            ax.axhline(pc.mean_base_rate[k], color=color, ls=":", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"forecast probability of {cls}", ylabel=f"observed frequency of {cls}")
        ax.set_title(f"{cls} (dotted: base rate)", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Direction probabilities: reliability on the evaluated hours (marker area: hours in the bin)")
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path, len(classes)
