"""The attention-pattern analysis of one trained model, with its controls and verdict."""

from dataclasses import dataclass

import numpy as np

from workflows.attention import metrics as am
from workflows.attention import sanity
from workflows.ml.checkpoints import Checkpoint
from workflows.ml.training import TrainConfig
from workflows.ml.windows import WindowData

# A mean profile counts as concentrated only when its largest weight exceeds the
# uniform weight by this factor AND by this factor over the strongest control.
MIN_LIFT = 1.5
CONTROL_MARGIN = 1.25
# Attention "marks hours that matter" when deleting the top-k hours moves forecasts
# more than 95% of random k-hour deletions AND at least this many times as much.
MIN_DELETION_RATIO = 1.5


@dataclass(frozen=True)
class Verdict:
    concentrated: bool
    peak_hour: int
    peak_lift: float
    control_lift: float
    relied_upon: bool | None  # uniform ablation made the error worse by more than 1%
    faithful: bool | None  # deleting top-k hours moved predictions >= 1.5x random hours (p < 0.05)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def train_config_from(ckpt: Checkpoint) -> TrainConfig:
    cfg = dict(ckpt.train_config)
    cfg["loss_weights"] = tuple(cfg.get("loss_weights", (1.0, 0.3, 0.5)))
    return TrainConfig(**cfg)


def regime_split(data: WindowData, attention: np.ndarray) -> dict:
    """Attention summaries for windows whose trailing 24 h volatility is below / above the median."""
    recent = data.test.x[:, -24:, 0]  # scaled log returns of the last 24 input hours
    trailing = np.sqrt(np.mean(recent**2, axis=1))
    high = trailing > np.median(trailing)
    return {
        "low_volatility": am.summarise(attention[~high]) if (~high).sum() else None,
        "high_volatility": am.summarise(attention[high]) if high.sum() else None,
    }


def per_head(maps: np.ndarray) -> list[dict]:
    """Compact summary per (layer, head) of Transformer maps (N, L, H, T)."""
    rows = []
    for layer in range(maps.shape[1]):
        for head in range(maps.shape[2]):
            s = am.summarise(maps[:, layer, head])
            rows.append({
                "layer": layer + 1, "head": head + 1,
                "normalised_entropy": s["normalised_entropy"]["median"],
                "top_hour": s["top_hours"][0], "profile_max_lift": s["profile_max_lift"],
            })
    return rows


def analyse(
    ckpt: Checkpoint,
    data: WindowData,
    attention: np.ndarray,
    attention_maps: np.ndarray | None = None,
    member_attention: np.ndarray | None = None,
    *,
    controls: bool = True,
    attribution: bool = True,
    seed: int = 0,
) -> dict:
    summary = am.summarise(attention)
    result: dict = {"summary": summary, "regimes": regime_split(data, attention)}
    if attention_maps is not None:
        result["heads"] = per_head(attention_maps)
    arch = ckpt.arch[0] if isinstance(ckpt.arch, list) else ckpt.arch
    control_summaries = {}
    if controls:
        control_summaries["untrained"] = am.summarise(sanity.untrained_attention(arch, data.test.x, seed=seed))
        control_summaries["shuffled_targets"] = am.summarise(
            sanity.shuffled_target_attention(arch, data, train_config_from(ckpt), seed=seed)
        )
    result["controls"] = control_summaries
    result["uniform_ablation"] = sanity.uniform_ablation(ckpt.model, data.test.x, data.test.ret)
    result["deletion"] = sanity.deletion_test(ckpt.model, data.test.x, attention, seed=seed)
    if attribution:
        result["attribution"] = sanity.attribution_agreement(ckpt.model, data.test.x, attention)
    if member_attention is not None:
        result["ensemble_spread"] = sanity.ensemble_spread(member_attention)
    result["verdict"] = verdict(summary, control_summaries, result["uniform_ablation"], result["deletion"]).to_dict()
    return result


def verdict(summary: dict, controls: dict, ablation: dict | None, deletion: dict | None) -> Verdict:
    lift = summary["profile_max_lift"]
    control_lift = max([c["profile_max_lift"] for c in controls.values()], default=1.0)
    concentrated = lift > MIN_LIFT and lift > CONTROL_MARGIN * control_lift
    return Verdict(
        concentrated=bool(concentrated),
        peak_hour=int(summary["top_hours"][0]),
        peak_lift=float(lift),
        control_lift=float(control_lift),
        relied_upon=None if ablation is None else bool(ablation["relative_change"] > 0.01),
        faithful=None if deletion is None else bool(deletion["p_value"] < 0.05 and deletion["ratio"] >= MIN_DELETION_RATIO),
    )
