"""Training profiles: `ci` (seconds, for tests), `cpu` (default, `make demo`), `full` (GPU).

Chosen by run config, else `$WORKFLOWS_PROFILE`, else `cpu`. Each profile gives
a recipe per model kind: architecture, heads, input features and training config.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field, replace

from workflows.data.features import FEATURE_COLUMNS, REFERENCE_FEATURES
from workflows.ml.training import TrainConfig, trains_returns
from workflows.ml.windows import WindowSpec

PROFILE_ENV = "WORKFLOWS_PROFILE"
PROFILES = ("ci", "cpu", "full")
MODEL_KINDS = ("reference_lstm", "attention_lstm", "transformer", "multitask", "ensemble", "volatility")
# The volatility model's inputs: the signed return, its size and the volume of each hour.
VOLATILITY_FEATURES = ("log_return", "abs_log_return", "log_volume")


@dataclass(frozen=True)
class Recipe:
    kind: str
    arch: str
    kwargs: dict = field(default_factory=dict)
    heads: dict = field(default_factory=dict)
    features: tuple[str, ...] = tuple(REFERENCE_FEATURES)
    train: TrainConfig = TrainConfig()
    members: int = 1  # > 1: an ensemble of this many seeds

    @property
    def forecasts_returns(self) -> bool:
        """False for a volatility model, whose return head is not trained."""
        return trains_returns(self.train.loss_weights)

    @property
    def window_spec(self) -> WindowSpec:
        return WindowSpec(features=self.features)

    def fingerprint(self) -> str:
        text = json.dumps(
            {
                "arch": self.arch,
                "kwargs": self.kwargs,
                "heads": self.heads,
                "features": self.features,
                "train": self.train.to_dict(),
                "members": self.members,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_profile(requested: str | None = None) -> str:
    profile = requested or os.environ.get(PROFILE_ENV) or "cpu"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return profile


def _recipes(profile: str) -> dict[str, Recipe]:
    if profile == "ci":
        lstm, query = {"hidden": 16}, {"hidden": 16, "d_attn": 8}
        tf = {"d_model": 16, "n_layers": 1, "n_heads": 8, "d_ff": 32, "mlp": (16, 8)}
        base = TrainConfig(epochs=3, batch_size=64, patience=0, snapshot_every=1)
    elif profile == "cpu":
        lstm, query = {"hidden": 128}, {"hidden": 64, "d_attn": 32}
        tf = {"d_model": 64, "n_layers": 2, "n_heads": 8, "d_ff": 128, "mlp": (128, 64)}
        base = TrainConfig(epochs=20, batch_size=64, patience=5, snapshot_every=2)
    else:  # full: the reference sizes, meant for a GPU
        lstm, query = {"hidden": 128}, {"hidden": 128, "d_attn": 64, "scales": (6, 24, 48)}
        tf = {"d_model": 256, "n_layers": 4, "n_heads": 8, "d_ff": 1024, "mlp": (128, 64)}
        # Measured on an H100 (docs/benchmarks.md): bf16 autocast slows these small,
        # launch-bound LSTMs (42k vs 70k samples/s), so mixed precision is kept for
        # the Transformer only.
        base = TrainConfig(epochs=60, batch_size=256, patience=10, snapshot_every=5, amp=False)
    multitask_heads = {"gaussian": True, "volatility": True, "direction": True}
    return {
        # The reference as specified: hidden 128, Adam lr 1e-3, 20 epochs, 3 features.
        "reference_lstm": Recipe("reference_lstm", "reference_lstm", lstm, train=replace(base, lr=1e-3)),
        "attention_lstm": Recipe("attention_lstm", "query_attention_lstm", query, train=base),
        "transformer": Recipe("transformer", "transformer", tf, train=replace(base, lr=5e-4, amp=True)),
        "multitask": Recipe(
            "multitask",
            "query_attention_lstm",
            query,
            heads=multitask_heads,
            features=tuple(FEATURE_COLUMNS),
            train=base,
        ),
        "ensemble": Recipe("ensemble", "query_attention_lstm", query, train=base, members=5),
        # The learning attention design on volatility targets only: the 24-hour realised variance and the
        # next hour's squared return, both under QLIKE (its return head is not trained and not evaluated).
        "volatility": Recipe(
            "volatility",
            "query_attention_lstm",
            query,
            heads={"volatility": True, "volatility_next": True},
            features=VOLATILITY_FEATURES,
            train=replace(base, loss_weights=(0.0, 1.0, 0.0), vol_loss="qlike", vol_next_weight=1.0),
        ),
    }


def recipe_for(kind: str, profile: str | None = None) -> Recipe:
    recipes = _recipes(resolve_profile(profile))
    if kind not in recipes:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {', '.join(recipes)}")
    return recipes[kind]


# Trained controls: the same LSTM as an attention design, reading its last hidden state
# (no attention), trained with that design's recipe on the same hours.
CONTROL_KINDS = ("no_attention_reference", "no_attention_lstm")
_TWIN_OF = {"no_attention_reference": "reference_lstm", "no_attention_lstm": "attention_lstm"}


def control_recipe(name: str, profile: str | None = None) -> Recipe:
    """The no-attention twin `name` of an attention design: LastStateLSTM with its hidden size,
    features, heads and training config."""
    if name not in _TWIN_OF:
        raise ValueError(f"unknown control {name!r}: choose one of {', '.join(_TWIN_OF)}")
    design = recipe_for(_TWIN_OF[name], profile)
    hidden = design.kwargs["hidden"]
    kwargs = {"hidden": hidden}
    if design.arch == "query_attention_lstm":  # its head is an MLP on [last state, context], with dropout
        kwargs |= {"head_hidden": (hidden,), "dropout": 0.1}
    return replace(design, kind=name, arch="last_state_lstm", kwargs=kwargs)
