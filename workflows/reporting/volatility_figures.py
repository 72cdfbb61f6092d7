"""The volatility figure: where the volatility model looks, beside where volatility has memory."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from workflows.attention.volatility import VolatilityAttention
from workflows.io import write_with


def volatility_figure(v: VolatilityAttention, path: Path, title: str) -> Path:
    """Left: mean attention per lag (x uniform) of the model and its controls, and the autocorrelation of
    absolute returns on the training hours. Right: weight on 24 h ago by hour of day, and that hour's
    mean absolute return."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), dpi=100)
    lags = np.asarray(v.lags)
    t = len(lags)
    ax.plot(lags, np.asarray(v.profile) * t, "o-", ms=3, color="tab:blue", label="volatility model")
    for (name, prof), color in zip(v.control_profiles.items(), ("tab:grey", "tab:olive")):
        ax.plot(lags, np.asarray(prof) * t, "-", lw=1, color=color, label=f"control: {name}")
    ax.axhline(1, color="black", lw=0.6, ls=":")
    ax.set_xlabel("hours ago")
    ax.set_ylabel("mean attention (x uniform)")
    ax.set_title(f"attention vs autocorrelation of |r| (Spearman {v.spearman:+.2f})")
    acf_ax = ax.twinx()
    acf_ax.bar(lags, v.acf, color="tab:red", alpha=0.25, width=0.8, label="autocorrelation of |r| (training)")
    acf_ax.set_ylabel("autocorrelation of |r|")
    handles = ax.get_legend_handles_labels()[0] + acf_ax.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper right")
    ax.invert_xaxis()
    h = v.hour_of_day
    if h is not None:
        hours = np.arange(24)
        bx.plot(hours, h.lag24_lift, "o-", ms=3, color="tab:blue", label="weight on 24 h ago (x uniform)")
        for (name, lift), color in zip(h.control_lag24_lift.items(), ("tab:grey", "tab:olive")):
            bx.plot(hours, lift, "-", lw=1, color=color, label=f"control: {name}")
        bx.set_xlabel("hour of day of the predicted hour (UTC)")
        bx.set_ylabel("weight on 24 h ago (x uniform)")
        bx.set_title(f"by hour of day (window correlation {h.correlation:+.2f})")
        cyc = bx.twinx()
        cyc.plot(hours, h.abs_return_pct, "s--", ms=3, color="tab:red", label="mean |r| (training), %")
        cyc.set_ylabel("mean |log return|, %")
        handles = bx.get_legend_handles_labels()[0] + cyc.get_legend_handles_labels()[0]
        bx.legend(handles, [x.get_label() for x in handles], fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp))
    plt.close(fig)
    return path
