"""Training profiles: `ci` (seconds, for tests), `cpu` (default, `make demo`), `full` (GPU).

Chosen by run config, else `$WORKFLOWS_PROFILE`, else `cpu`. Each profile gives
a recipe per model kind: architecture, heads, input features and training config.

The one registry of model kinds lives here too (`ModelKind`, `register`): name, description,
role, recipe per profile, whether it serves, its no-attention twin, whether it forecasts
volatility. Everything else (assets, evaluation, report, serving, the demo) derives from it.
"""

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from workflows.data.features import FEATURE_COLUMNS, REFERENCE_FEATURES
from workflows.ml.training import TrainConfig, trains_returns
from workflows.ml.windows import WindowSpec
from workflows.settings import PROFILE_ENV as PROFILE_ENV  # where the CLI reads it from
from workflows.settings import requested_profile

Profile = Literal["ci", "cpu", "full"]  # a resolved profile: every reader past `resolve_profile` holds one of these
PROFILES: tuple[Profile, ...] = get_args(Profile)
ProfileChoice = Literal["", "ci", "cpu", "full"]  # a run-config field: a profile, or "" (resolve_profile's default)
# The volatility model's inputs: the signed return, its size and the volume of each hour.
VOLATILITY_FEATURES = ("log_return", "abs_log_return", "log_volume")
# Optional inputs of the volatility recipe (`VolatilityDesign`): realised-variance summaries over the last
# 1, 24 and 168 hours in logs (ml/windows.py), and the hour of day (sin, cos).
RV_SUMMARY_FEATURES = ("log_rv_1h", "log_rv_24h", "log_rv_168h")
HOUR_FEATURES = ("hour_sin", "hour_cos")
DEFAULT_WINDOW = 48


@dataclass(frozen=True)
class Recipe:
    kind: str
    arch: str
    kwargs: dict = field(default_factory=dict)
    heads: dict = field(default_factory=dict)
    features: tuple[str, ...] = tuple(REFERENCE_FEATURES)
    train: TrainConfig = TrainConfig()
    members: int = 1  # > 1: an ensemble of this many seeds
    window: int = DEFAULT_WINDOW  # input hours per window

    @property
    def forecasts_returns(self) -> bool:
        """False for a volatility model, whose return head is not trained."""
        return trains_returns(self.train.loss_weights)

    @property
    def window_spec(self) -> WindowSpec:
        return WindowSpec(window=self.window, features=self.features)

    def fingerprint(self) -> str:
        text = json.dumps(
            {
                "arch": self.arch,
                "kwargs": self.kwargs,
                "heads": self.heads,
                "features": self.features,
                "train": self.train.to_dict(),
                "members": self.members,
                # only a non-default window enters, so the recipes that predate the field keep their fingerprint
                **({"window": self.window} if self.window != DEFAULT_WINDOW else {}),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_profile(requested: str | None = None) -> Profile:
    """The one place a profile is chosen: `requested`, else `$WORKFLOWS_PROFILE`, else `cpu`."""
    profile = requested or requested_profile() or "cpu"
    for known in PROFILES:
        if profile == known:
            return known
    raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")


@dataclass(frozen=True)
class ProfileSizes:
    """A profile's sizes, from which each kind's recipe is built."""

    lstm: dict  # the reference LSTM's kwargs
    query: dict  # the learning attention LSTM's kwargs
    tf: dict  # the Transformer's kwargs
    base: TrainConfig


def profile_sizes(profile: str) -> ProfileSizes:
    if profile == "ci":
        return ProfileSizes(
            lstm={"hidden": 16},
            query={"hidden": 16, "d_attn": 8},
            tf={"d_model": 16, "n_layers": 1, "n_heads": 8, "d_ff": 32, "mlp": (16, 8)},
            base=TrainConfig(epochs=3, batch_size=64, patience=0, snapshot_every=1),
        )
    if profile == "cpu":
        return ProfileSizes(
            lstm={"hidden": 128},
            query={"hidden": 64, "d_attn": 32},
            tf={"d_model": 64, "n_layers": 2, "n_heads": 8, "d_ff": 128, "mlp": (128, 64)},
            base=TrainConfig(epochs=20, batch_size=64, patience=5, snapshot_every=2),
        )
    # full: the reference sizes, meant for a GPU. Measured on an H100 (docs/benchmarks.md): bf16 autocast
    # slows these small, launch-bound LSTMs (42k vs 70k samples/s), so mixed precision is kept for the
    # Transformer only.
    return ProfileSizes(
        lstm={"hidden": 128},
        query={"hidden": 128, "d_attn": 64, "scales": (6, 24, 48)},
        tf={"d_model": 256, "n_layers": 4, "n_heads": 8, "d_ff": 1024, "mlp": (128, 64)},
        base=TrainConfig(epochs=60, batch_size=256, patience=10, snapshot_every=5, amp=False),
    )


RETURN, VOLATILITY = "return", "volatility"


@dataclass(frozen=True)
class ModelKind:
    """One model kind: everything the assets, the evaluation, the report and serving need to know.

    Adding a kind is one `register(ModelKind(...))` here and, for a new architecture, its class in
    `ml/models.py`: its asset (`{name}_model`), its forecast-log rows, its report row and (with a
    `twin`) its no-attention control all follow from this entry.
    """

    name: str
    description: str  # one line, shown in the Dagster UI
    recipe: Callable[[ProfileSizes], Recipe]
    role: str = RETURN  # RETURN: a return forecaster (a model row of the report); VOLATILITY: variances only
    serves: bool = False  # the kind `latest_forecast` serves (one kind)
    twin: str | None = None  # the name of its trained no-attention control (same recipe, last LSTM state)
    forecasts_variance: bool = False  # its 24 h variance forecasts join the volatility comparisons
    label: str | None = None  # its name in the report's volatility sentences
    demo_profile: str | None = None  # `make demo` trains it in this profile (None: the demo's default)
    # an ensemble: the single-model kind whose recipe is its member 0's; that kind's period model is reused as
    # member 0 when it was trained exactly as member 0 would be (`period_models.shared_first_member`)
    first_member: str | None = None


_REGISTRY: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    if kind.role not in (RETURN, VOLATILITY):
        raise ValueError(f"model kind {kind.name!r}: role must be {RETURN!r} or {VOLATILITY!r}, got {kind.role!r}")
    if kind.serves and any(k.serves for k in _REGISTRY.values() if k.name != kind.name):
        raise ValueError(f"model kind {kind.name!r}: {served_kind()!r} already serves; one kind serves")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def model_kinds() -> tuple[str, ...]:
    """Every registered kind, in registration order (the order of the report's rows)."""
    return tuple(_REGISTRY)


def model_kind(name: str) -> ModelKind:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model kind {name!r}: choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def return_models() -> tuple[str, ...]:
    return tuple(k.name for k in _REGISTRY.values() if k.role == RETURN)


def volatility_models() -> tuple[str, ...]:
    return tuple(k.name for k in _REGISTRY.values() if k.role == VOLATILITY)


def variance_forecasters() -> tuple[str, ...]:
    return tuple(k.name for k in _REGISTRY.values() if k.forecasts_variance)


def twins() -> dict[str, str]:
    """Attention design -> its no-attention control."""
    return {k.name: k.twin for k in _REGISTRY.values() if k.twin}


def control_kinds() -> tuple[str, ...]:
    return tuple(twins().values())


def served_kind() -> str:
    served = [k.name for k in _REGISTRY.values() if k.serves]
    if len(served) != 1:
        raise ValueError(f"exactly one model kind must serve, found {served or 'none'}")
    return served[0]


def demo_profiles() -> dict[str, str]:
    return {k.name: k.demo_profile for k in _REGISTRY.values() if k.demo_profile}


def design_of(kind: str) -> str:
    """The kind whose recipe and profile `kind` trains with: a no-attention twin's attention design, else itself
    (the one inversion of `twins()`)."""
    return {twin: design for design, twin in twins().items()}.get(kind, kind)


def period_kinds() -> tuple[str, ...]:
    """Every kind with a period model: the model kinds, then the trained no-attention twins."""
    return (*model_kinds(), *control_kinds())


def first_member_of(kind: str) -> str | None:
    """For an ensemble kind, the single-model kind whose recipe is its member 0's (`ModelKind.first_member`);
    None for every other kind and for the twins."""
    return model_kind(kind).first_member if kind in model_kinds() else None


def period_recipe(kind: str, profile: str | None, max_epochs: int = 0, device: str | None = None) -> Recipe:
    """The recipe a period model of `kind` (a model kind or a no-attention twin) trains with: its profile's, its
    epochs capped at `max_epochs` (0: the profile's), on `device` (None: the recipe's)."""
    recipe = recipe_for(kind, profile) if kind in model_kinds() else control_recipe(kind, profile)
    epochs = min(max_epochs, recipe.train.epochs) if max_epochs else recipe.train.epochs
    return replace(recipe, train=replace(recipe.train, epochs=epochs, device=device or recipe.train.device))


def kind_profiles(requested: str | None = None, per_design: Mapping[str, str] | None = None) -> dict[str, Profile]:
    """The profile each period-model kind trains in, resolved once for a run: `per_design`'s for the designs it
    names (a twin follows its design), `resolve_profile(requested)` for the rest."""
    default = resolve_profile(requested)
    chosen: dict[str, Profile] = {design: resolve_profile(p) for design, p in (per_design or {}).items()}
    return {kind: chosen.get(design_of(kind), default) for kind in period_kinds()}


_MULTITASK_HEADS = {"gaussian": True, "volatility": True, "direction": True}

register(
    ModelKind(
        "reference_lstm",
        "The reference attention LSTM exactly as specified (hidden 128, Linear(H,1) scores, softmax over 48 h).",
        # The reference as specified: hidden 128, Adam lr 1e-3, 20 epochs, 3 features.
        lambda s: Recipe("reference_lstm", "reference_lstm", s.lstm, train=replace(s.base, lr=1e-3)),
        twin="no_attention_reference",
        demo_profile="cpu",
    )
)
register(
    ModelKind(
        "attention_lstm",
        "Attention LSTM that learns where to look: last-state query over time-aligned input encodings.",
        lambda s: Recipe("attention_lstm", "query_attention_lstm", s.query, train=s.base),
        twin="no_attention_lstm",
        demo_profile="cpu",
    )
)
register(
    ModelKind(
        "transformer",
        "8-head Transformer encoder; per-layer, per-head attention maps for the last position.",
        lambda s: Recipe("transformer", "transformer", s.tf, train=replace(s.base, lr=5e-4, amp=True)),
    )
)
register(
    ModelKind(
        "multitask",
        "Attention LSTM with return (Gaussian NLL), volatility and DOWN/STABLE/UP heads on all features.",
        lambda s: Recipe(
            "multitask",
            "query_attention_lstm",
            s.query,
            heads=_MULTITASK_HEADS,
            features=tuple(FEATURE_COLUMNS),
            train=s.base,
        ),
        serves=True,  # the model with a predictive variance and direction classes
        forecasts_variance=True,
        label="multi-task model's 24 h head",
    )
)
register(
    ModelKind(
        "ensemble",
        "Five attention LSTMs differing by seed: mean forecast, member spread as uncertainty.",
        lambda s: Recipe("ensemble", "query_attention_lstm", s.query, train=s.base, members=5),
        first_member="attention_lstm",  # member 0 is the attention LSTM's recipe and seed: trained once
    )
)


@dataclass(frozen=True)
class VolatilityDesign:
    """The volatility recipe's design choices (benchmarks/vol_design.py compares them on validation hours).

    `log_variance`: the volatility heads output a log-variance (exp(s / 2)) instead of softplus;
    `rv_summaries`: the log realised variance of the last 1, 24 and 168 hours as inputs beside the raw
    window; `hour_of_day`: the hour (sin, cos) as an input; `window`: input hours, with `scales` the
    multi-scale attention pools (None: the profile's)."""

    log_variance: bool = False
    rv_summaries: bool = False
    hour_of_day: bool = False
    window: int = DEFAULT_WINDOW
    scales: tuple[int, ...] | None = None

    @property
    def features(self) -> tuple[str, ...]:
        return (
            *VOLATILITY_FEATURES,
            *(RV_SUMMARY_FEATURES if self.rv_summaries else ()),
            *(HOUR_FEATURES if self.hour_of_day else ()),
        )

    def label(self) -> str:
        parts = [
            "log-variance" if self.log_variance else "softplus",
            *(["RV 1h/24h/1w"] if self.rv_summaries else []),
            *(["hour of day"] if self.hour_of_day else []),
            f"{self.window} h" + (f" (pools {', '.join(map(str, self.scales))})" if self.scales else ""),
        ]
        return ", ".join(parts)


# The volatility recipe's default design, chosen by benchmarks/vol_design.py on hours before every forecast
# period (docs/benchmarks.md, "Volatility model design on validation hours"): log-variance heads and the
# realised-variance summaries had the lowest mean validation QLIKE at 24 h (5 seeds) and beat the previous
# design (softplus heads, the three raw inputs) at both horizons; the hour of day and a 168-hour window did not
# improve on it.
VOLATILITY_DESIGN = VolatilityDesign(log_variance=True, rv_summaries=True)


def volatility_recipe(sizes: ProfileSizes, design: VolatilityDesign = VOLATILITY_DESIGN) -> Recipe:
    """The learning attention LSTM on volatility targets (QLIKE on the 24 h and next-hour variance); its return
    head is not trained."""
    kwargs = dict(sizes.query)
    if design.window != DEFAULT_WINDOW:
        kwargs["window"] = design.window
    if design.scales is not None:
        kwargs["scales"] = tuple(design.scales)
    if max(kwargs.get("scales", (design.window,))) > design.window:
        raise ValueError(f"attention pools {kwargs['scales']} reach past the {design.window}-hour window")
    heads = {"volatility": True, "volatility_next": True}
    if design.log_variance:
        heads["log_variance"] = True
    return Recipe(
        "volatility",
        "query_attention_lstm",
        kwargs,
        heads=heads,
        features=design.features,
        train=replace(sizes.base, loss_weights=(0.0, 1.0, 0.0), vol_loss="qlike", vol_next_weight=1.0),
        window=design.window,
    )


register(
    ModelKind(
        "volatility",
        "The learning attention LSTM on volatility targets (24 h realised variance and the next hour's "
        "squared return, QLIKE): where volatility has memory.",
        volatility_recipe,
        role=VOLATILITY,
        twin="no_attention_volatility",
        forecasts_variance=True,
        label="volatility attention model",
    )
)


def recipe_for(kind: str, profile: str | None = None) -> Recipe:
    return model_kind(kind).recipe(profile_sizes(resolve_profile(profile)))


# Trained controls: the same LSTM as an attention design, reading its last hidden state
# (no attention), trained with that design's recipe on the same hours (`ModelKind.twin`).
def control_recipe(name: str, profile: str | None = None) -> Recipe:
    """The no-attention twin `name` of an attention design: LastStateLSTM with its hidden size,
    features, heads and training config."""
    if name not in control_kinds():
        raise ValueError(f"unknown control {name!r}: choose one of {', '.join(control_kinds())}")
    design = recipe_for(design_of(name), profile)
    hidden = design.kwargs["hidden"]
    kwargs = {"hidden": hidden}
    if design.arch == "query_attention_lstm":  # its head is an MLP on [last state, context], with dropout
        kwargs |= {"head_hidden": (hidden,), "dropout": 0.1}
    return replace(design, kind=name, arch="last_state_lstm", kwargs=kwargs)
