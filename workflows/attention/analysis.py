"""The attention-pattern analysis of one trained model, with its controls and verdict.

Every lift carries a circular block-bootstrap interval over test windows (blocks of
48 consecutive windows, which share input hours; `metrics.profile_intervals`), and
the verdicts are read off intervals, not fixed factors:

* concentrated: the lower end of the peak-lift interval exceeds 1 (uniform) and the
  upper end of the strongest control's peak-lift interval (controls: the same
  architecture untrained, and trained on shuffled targets);
* relied upon / faithful / positions matter: see `sanity.UniformAblation` and
  `sanity.DeletionTest`.

Every attention map is analysed the same way: the main per-hour attention, each
multi-scale pool over the hours it can see (lift relative to the pool's width), each
Transformer (layer, head), and each seed of an ensemble of the same recipe.

Cost: the shuffled-target control is trained once per distinct architecture and
training config (pass one `control_cache` dict to every `analyse` call of a run: the
attention LSTM and the ensemble's members share one) on at most the most recent
8,760 training windows (`sanity.CONTROL_MAX_TRAIN_WINDOWS`).
"""

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

import numpy as np

from workflows.attention import metrics as am
from workflows.attention import sanity
from workflows.attention.metrics import AttentionSummary, ProfileBootstrap
from workflows.attention.sanity import Attribution, DeletionTest, UniformAblation
from workflows.attention.volatility import SEASONAL_LAG, VolatilityAttention, volatility_attention
from workflows.ml.checkpoints import Checkpoint
from workflows.ml.training import TrainConfig
from workflows.ml.windows import WindowData


def _json_safe(value) -> Any:
    if is_dataclass(value):
        return {f.name: _json_safe(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


@dataclass(frozen=True)
class Verdict:
    concentrated: bool  # peak_lift_ci[0] > 1 and > control_lift
    peak_hour: int  # hours ago of the mean profile's largest weight
    peak_lift: float  # that weight x window length
    peak_lift_ci: tuple[float, float]  # block-bootstrap simultaneous 95% interval
    control_lift: float  # the control bound used: upper end of the strongest control's peak-lift interval
    relied_upon: bool | None  # uniform weights raise the MSE by > 1%, interval above 0 (None: not testable)
    faithful: bool | None  # top-k deletion beats the position-matched null (None: not tested)
    positions_matter: bool | None = None  # top-k deletion beats random hours and the recency baseline

    def to_dict(self) -> dict:
        return _json_safe(self)


@dataclass(frozen=True)
class MapAnalysis:
    """One attention map (a pool, a head, a seed) against uniform and the same map of the controls."""

    name: str  # "6 h pool", "L1 H3", "seed 2"
    hours: int  # hours the map can see; uniform is 1 / hours
    normalised_entropy: float  # median over windows, over the visible hours
    bootstrap: ProfileBootstrap
    control_bound: float  # upper end of the strongest control's peak-lift interval for this map (1.0: none)
    concentrated: bool
    layer: int | None = None
    head: int | None = None

    @property
    def peak_hour(self) -> int:
        return self.bootstrap.peak_hour

    @property
    def peak_lift(self) -> float:
        return self.bootstrap.peak_lift

    @property
    def peak_lift_ci(self) -> tuple[float, float]:
        return self.bootstrap.peak_lift_ci


@dataclass(frozen=True)
class SeedSpread:
    """Attention of one recipe trained with several seeds."""

    source: str  # whose seeds these are, as the report says it
    members: list[MapAnalysis]

    @property
    def peak_hours(self) -> list[int]:
        return [m.peak_hour for m in self.members]

    @property
    def peak_lifts(self) -> list[float]:
        return [m.peak_lift for m in self.members]

    @property
    def concentrated(self) -> int:
        return sum(m.concentrated for m in self.members)

    @property
    def normalised_entropy_std(self) -> float:
        return float(np.std([m.normalised_entropy for m in self.members]))


@dataclass(frozen=True)
class ControlSetup:
    """How the controls were made, for the report."""

    names: tuple[str, ...]
    key: str  # architecture + training config + data: equal keys share one trained control
    train_windows: int  # of the model's training split
    shuffled_train_windows: int  # the most recent windows the shuffled-target control trained on
    reused: bool  # taken from the run's cache (trained for an earlier model with the same key)


@dataclass(frozen=True)
class RegimeSplit:
    """The attention summarised separately over calm and volatile test windows (descriptive, no test):
    trailing 24 h volatility of the window's inputs below / above its median. None: no such windows."""

    low_volatility: AttentionSummary | None
    high_volatility: AttentionSummary | None


@dataclass(frozen=True)
class PeriodReading:
    """One forecast period's own analysis of one model, beside the pooled one (the per-period spread)."""

    period: str  # "2020-07"
    checkpoint: str  # the period model's file name
    windows: int  # test windows: the period's logged hours
    first_hour: str  # UTC, the first and last forecast origin
    last_hour: str
    peak_hour: int
    peak_lift: float
    peak_lift_ci: tuple[float, float]
    concentrated: bool
    relied_upon: bool | None
    faithful: bool | None


@dataclass
class AttentionAnalysis:
    summary: AttentionSummary  # of the per-hour attention
    controls: dict[str, AttentionSummary]  # control name -> its per-hour attention summarised
    verdict: Verdict
    bootstrap: ProfileBootstrap  # the per-hour attention's intervals
    control_bootstrap: dict[str, ProfileBootstrap] = field(default_factory=dict)
    regimes: RegimeSplit | None = None
    ablation: UniformAblation | None = None
    deletion: DeletionTest | None = None
    attribution: Attribution | None = None
    pools: list[MapAnalysis] = field(default_factory=list)  # multi-scale pools (empty: one pool)
    heads: list[MapAnalysis] = field(default_factory=list)  # Transformer (layer, head)
    seed_spread: SeedSpread | None = None
    control_setup: ControlSetup | None = None
    output: str = "ret"  # the forecast the checks read: "ret", or "vol_next" for a volatility model
    volatility: VolatilityAttention | None = None  # a volatility model: attention against volatility's memory
    periods: list[PeriodReading] = field(default_factory=list)  # pooled over forecast periods: each one's reading

    def to_dict(self) -> dict:
        """JSON-safe: tuples become lists, non-finite numbers None."""
        return _json_safe(self)


@dataclass(frozen=True)
class Protocol:
    """How many draws, windows and resamples an attention analysis spends (docs/evaluation.md, "The attention
    protocol's sizes"): the deletion test's position-matched null draws and random-hours draws, the most test
    windows it reads, and the block-bootstrap resamples of every interval."""

    deletion_draws: int = 200
    random_draws: int = 100
    deletion_windows: int = 1_000
    resamples: int = am.DEFAULT_RESAMPLES

    def analyse_kwargs(self) -> dict:
        return dict(self.__dict__)

    def label(self) -> str:
        return (
            f"{self.deletion_draws} matched and {self.random_draws} random deletion draws on at most "
            f"{self.deletion_windows:,} windows, {self.resamples:,} bootstrap resamples"
        )


def train_config_from(ckpt: Checkpoint) -> TrainConfig:
    cfg = dict(ckpt.train_config)
    cfg["loss_weights"] = tuple(cfg.get("loss_weights", (1.0, 0.3, 0.5)))
    return TrainConfig(**cfg)


def trailing_volatility(data: WindowData) -> np.ndarray:
    """Per test window: the root mean square of the scaled log returns of its last 24 input hours."""
    recent = data.test.x[:, -24:, 0]
    return np.sqrt(np.mean(recent**2, axis=1))


def regime_split(data: WindowData, attention: np.ndarray) -> RegimeSplit:
    """Attention summaries for windows whose trailing 24 h volatility is below / above the median."""
    return regimes_of(trailing_volatility(data), attention)


def regimes_of(trailing: np.ndarray, attention: np.ndarray) -> RegimeSplit:
    high = trailing > np.median(trailing)
    return RegimeSplit(
        low_volatility=am.summarise(attention[~high]) if (~high).sum() else None,
        high_volatility=am.summarise(attention[high]) if high.sum() else None,
    )


def _intervals(weights: np.ndarray, block: int, resamples: int, seed: int) -> ProfileBootstrap:
    return am.profile_intervals(weights, block=block, resamples=resamples, seed=seed)


def map_analysis(
    name: str,
    weights: np.ndarray,
    control_weights: dict[str, np.ndarray],
    *,
    block: int = am.DEFAULT_BLOCK,
    resamples: int = am.DEFAULT_RESAMPLES,
    seed: int = 0,
    layer: int | None = None,
    head: int | None = None,
) -> MapAnalysis:
    """Rows (N, s) over the hours the map sees; controls' rows of the same map."""
    boot = _intervals(weights, block, resamples, seed)
    bound = max([_intervals(c, block, resamples, seed).peak_lift_ci[1] for c in control_weights.values()], default=1.0)
    lo = boot.peak_lift_ci[0]
    return MapAnalysis(
        name=name,
        hours=int(weights.shape[1]),
        normalised_entropy=float(np.median(am.normalised_entropy(weights))),
        bootstrap=boot,
        control_bound=float(bound),
        concentrated=bool(lo > 1.0 and lo > bound),
        layer=layer,
        head=head,
    )


def pool_widths(scale_attention: np.ndarray, scales: list[int] | None = None) -> list[int]:
    """Hours each pool of (N, S, T) sees: the model's `scales` when known (capped at T), else from the
    weights: a pool's masked hours are its oldest and carry exactly zero weight in every window."""
    t = scale_attention.shape[2]
    if scales is not None and len(scales) == scale_attention.shape[1]:
        return [min(int(s), t) for s in scales]
    return [t - int(np.argmax(scale_attention[:, j].max(axis=0) > 0)) for j in range(scale_attention.shape[1])]


def pool_analyses(
    scale_attention: np.ndarray, controls: dict[str, dict[str, np.ndarray]], scales: list[int] | None = None, **kw
) -> list[MapAnalysis]:
    """Each multi-scale pool over the hours it can see (masked hours carry zero weight)."""
    out = []
    for j, s in enumerate(pool_widths(scale_attention, scales)):
        if s < 2:
            continue
        ctrl = {c: o["scale_attention"][:, j, -s:] for c, o in controls.items() if "scale_attention" in o}
        out.append(map_analysis(f"{s} h pool", scale_attention[:, j, -s:], ctrl, **kw))
    return out


def head_analyses(maps: np.ndarray, controls: dict[str, dict[str, np.ndarray]], **kw) -> list[MapAnalysis]:
    """Each (layer, head) of Transformer maps (N, L, H, T)."""
    out = []
    for layer in range(maps.shape[1]):
        for head in range(maps.shape[2]):
            ctrl = {c: o["attention_maps"][:, layer, head] for c, o in controls.items() if "attention_maps" in o}
            out.append(
                map_analysis(
                    f"L{layer + 1} H{head + 1}", maps[:, layer, head], ctrl, layer=layer + 1, head=head + 1, **kw
                )
            )
    return out


def seed_spread(
    member_attention: np.ndarray, source: str, controls: dict[str, dict[str, np.ndarray]], **kw
) -> SeedSpread:
    """Per-seed analysis of (N, members, T) attention; controls are single-model controls of the recipe."""
    ctrl = {c: o["attention"] for c, o in controls.items()}
    members = [
        map_analysis(f"seed {m + 1}", member_attention[:, m], ctrl, **kw) for m in range(member_attention.shape[1])
    ]
    return SeedSpread(source=source, members=members)


def verdict(
    boot: ProfileBootstrap,
    control_boots: dict[str, ProfileBootstrap],
    ablation: UniformAblation | None,
    deletion: DeletionTest | None,
) -> Verdict:
    bound = max([c.peak_lift_ci[1] for c in control_boots.values()], default=1.0)
    lo = boot.peak_lift_ci[0]
    return Verdict(
        concentrated=bool(lo > 1.0 and lo > bound),
        peak_hour=boot.peak_hour,
        peak_lift=boot.peak_lift,
        peak_lift_ci=boot.peak_lift_ci,
        control_lift=float(bound),
        relied_upon=None if ablation is None else ablation.relied_upon,
        faithful=None if deletion is None else deletion.faithful,
        positions_matter=None if deletion is None else deletion.positions_matter,
    )


def describe(
    attention: np.ndarray,
    controls: dict[str, dict[str, np.ndarray]],
    *,
    attention_maps: np.ndarray | None = None,
    scale_attention: np.ndarray | None = None,
    scales: list[int] | None = None,
    seed_attention: np.ndarray | None = None,
    seed_source: str = "",
    regimes: RegimeSplit | None = None,
    block: int = am.DEFAULT_BLOCK,
    resamples: int = am.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> AttentionAnalysis:
    """Everything read from the attention maps alone (no model): summaries, intervals, pools, heads,
    seeds, and the concentration verdict. `controls` maps a name to that control's attention outputs
    (`attention`, optional `scale_attention` / `attention_maps`)."""
    kw = {"block": block, "resamples": resamples, "seed": seed}
    boot = _intervals(attention, **kw)
    control_boots = {c: _intervals(o["attention"], **kw) for c, o in controls.items()}
    pools = []
    if scale_attention is not None and scale_attention.shape[1] > 1:
        pools = pool_analyses(scale_attention, controls, scales, **kw)
    return AttentionAnalysis(
        summary=am.summarise(attention),
        controls={c: am.summarise(o["attention"]) for c, o in controls.items()},
        verdict=verdict(boot, control_boots, None, None),
        bootstrap=boot,
        control_bootstrap=control_boots,
        regimes=regimes,
        pools=pools,
        heads=head_analyses(attention_maps, controls, **kw) if attention_maps is not None else [],
        seed_spread=seed_spread(seed_attention, seed_source, controls, **kw) if seed_attention is not None else None,
    )


def control_key(ckpt: Checkpoint, data: WindowData) -> str:
    """Equal for models whose controls would be the same: one member's architecture, the training
    config (seed and snapshots aside: controls use the analysis seed) and the windows."""
    arch = ckpt.arch[0] if isinstance(ckpt.arch, list) else ckpt.arch
    cfg = {k: v for k, v in ckpt.train_config.items() if k not in ("seed", "snapshot_every", "snapshot_size")}
    text = json.dumps(
        {
            "arch": arch.to_dict(),
            "train": cfg,
            "data": data.data_version,
            "spec": data.spec_dict(),
            "windows": [len(data.train), len(data.val)],  # not the test windows: they do not train the control
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def control_outputs(
    ckpt: Checkpoint,
    data: WindowData,
    seed: int = 0,
    cache: dict | None = None,
    store: sanity.ControlStore | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], ControlSetup]:
    """The untrained and shuffled-target controls' attention outputs on the test windows, trained
    once per `control_key` when the same `cache` dict is passed for every model of a run, and once per
    forecast period and architecture when a `store` keeps the trained controls on disk."""
    key = f"{control_key(ckpt, data)}-{seed}"
    reused = cache is not None and key in cache
    if cache is not None and reused:
        outputs = cache[key]
    else:
        arch = ckpt.arch[0] if isinstance(ckpt.arch, list) else ckpt.arch
        shuffled, reused = sanity.stored_or_trained_control(arch, data, train_config_from(ckpt), seed=seed, store=store)
        outputs = {
            "untrained": sanity.untrained_outputs(arch, data.test.x, seed=seed),
            "shuffled_targets": sanity.attention_of(shuffled, data.test.x),
        }
        if cache is not None:
            cache[key] = outputs
    setup = ControlSetup(
        names=tuple(outputs),
        key=key,
        train_windows=len(data.train),
        shuffled_train_windows=min(len(data.train), sanity.CONTROL_MAX_TRAIN_WINDOWS),
        reused=reused,
    )
    return outputs, setup


@dataclass(frozen=True)
class RawEvidence:
    """What one model's analysis rests on, per test window, for pooling over forecast periods: the controls'
    outputs, the ablation's paired losses, the deletion and attribution evidence, and the hours."""

    output: str  # "ret" or "vol_next": what the model forecasts
    controls: dict[str, dict[str, np.ndarray]]  # control name -> its outputs
    ablation: tuple[np.ndarray, np.ndarray] | None  # losses with the model's attention and with uniform weights
    deletion: sanity.DeletionEvidence
    attribution: tuple[np.ndarray, np.ndarray] | None  # None: attribution not run
    size_24h: np.ndarray | None  # the |log return| input 24 hours before each predicted hour (volatility only)
    trailing_vol: np.ndarray
    end_ts: np.ndarray  # window ends
    train_end_ts: np.ndarray | None  # volatility only: the training windows' ends and raw returns
    train_raw_ret: np.ndarray | None


@dataclass(frozen=True)
class Analysed:
    """`analyse`'s result: the analysis and the raw evidence it rests on."""

    analysis: AttentionAnalysis
    evidence: RawEvidence


def analyse(
    ckpt: Checkpoint,
    data: WindowData,
    attention: np.ndarray,
    attention_maps: np.ndarray | None = None,
    member_attention: np.ndarray | None = None,
    *,
    scale_attention: np.ndarray | None = None,
    seed_attention: np.ndarray | None = None,
    seed_source: str | None = None,
    controls: bool = True,
    attribution: bool = True,
    seed: int = 0,
    control_cache: dict | None = None,
    control_store: sanity.ControlStore | None = None,
    deletion_draws: int = 200,
    deletion_windows: int = 1_000,
    random_draws: int = 100,
    resamples: int = am.DEFAULT_RESAMPLES,
) -> Analysed:
    """The full analysis of one model's test-window attention, with the raw evidence it rests on (what a
    pooled analysis over forecast periods needs: `attention.periods.evidence_of`).

    `member_attention` (N, members, T): an ensemble's own members, analysed per seed.
    `seed_attention` / `seed_source`: the same for a single model whose recipe was trained
    with other seeds elsewhere (the attention LSTM and the ensemble's members), overriding
    `member_attention` for the seed spread. `control_cache`: one dict per run, so models
    with the same architecture and training config share one trained control.
    `deletion_windows`: the deletion test (about 300 forward passes) runs on at most this
    many test windows, evenly spaced over the test period, to bound its cost on long tests.
    """
    outputs, setup = control_outputs(ckpt, data, seed, control_cache, control_store) if controls else ({}, None)
    if seed_attention is None and member_attention is not None:
        seed_attention = member_attention
        seed_source = seed_source or f"its own {member_attention.shape[1]} members, which differ only by seed"
    arch = ckpt.arch[0] if isinstance(ckpt.arch, list) else ckpt.arch
    an = describe(
        attention,
        outputs,
        attention_maps=attention_maps,
        scale_attention=scale_attention,
        scales=arch.kwargs.get("scales"),
        seed_attention=seed_attention,
        seed_source=seed_source or "",
        regimes=regime_split(data, attention),
        resamples=resamples,
        seed=seed,
    )
    output = "ret" if ckpt.forecasts_returns else "vol_next"
    losses = sanity.ablation_losses(ckpt.model, data.test.x, data.test.ret, output=output)
    ablation = (
        None if losses is None else sanity.ablation_from_losses(*losses, output=output, seed=seed, resamples=resamples)
    )
    every = max(1, -(-len(attention) // deletion_windows))  # ceil: evenly spaced windows
    deletion_ev = sanity.deletion_evidence(
        ckpt.model,
        data.test.x[::every],
        attention[::every],
        sanity.NullDraws(draws=deletion_draws, random_draws=random_draws, seed=seed),
        output=output,
    )
    deletion = sanity.deletion_from_evidence(deletion_ev, resamples=resamples, seed=seed)
    attr_ev = sanity.attribution_evidence(ckpt.model, data.test.x, attention, output=output) if attribution else None
    attr = sanity.attribution_from_evidence(attr_ev) if attr_ev is not None else None
    vol, size_24h = None, None
    if output == "vol_next":
        ctrl = {c: o["attention"] for c, o in outputs.items()}
        features = list(data.spec.features)
        # the |log return| input 24 hours before each predicted hour (scaled units: partialling is affine-free)
        size_24h = (
            np.abs(data.test.x[:, -SEASONAL_LAG, features.index("log_return")]) if "log_return" in features else None
        )
        vol = volatility_attention(
            attention,
            ctrl,
            data.test.end_ts,
            data.train.end_ts,
            data.train.raw_ret,
            resamples=resamples,
            seed=seed,
            size_24h=size_24h,
        )
    evidence = RawEvidence(
        output=output,
        controls=outputs,
        ablation=losses,
        deletion=deletion_ev,
        attribution=attr_ev,
        size_24h=size_24h,
        trailing_vol=trailing_volatility(data),
        end_ts=data.test.end_ts,
        train_end_ts=data.train.end_ts if output == "vol_next" else None,
        train_raw_ret=data.train.raw_ret if output == "vol_next" else None,
    )
    analysis = replace(
        an,
        output=output,
        volatility=vol,
        ablation=ablation,
        deletion=deletion,
        attribution=attr,
        control_setup=setup,
        verdict=verdict(an.bootstrap, an.control_bootstrap, ablation, deletion),
    )
    return Analysed(analysis, evidence)


def analyse_all(
    loaded: dict,
    tensors: dict[str, dict[str, np.ndarray]],
    log=None,
    seed: int = 0,
    store: sanity.ControlStore | None = None,
    cache: dict | None = None,
    protocol: Protocol | None = None,
) -> dict[str, Analysed]:
    """Every model of a run: `loaded` maps a name to (checkpoint, windows), `tensors` to its saved attention
    tensors. Controls are shared between models with one `control_key` (`cache`: pass a dict to read the
    controls' outputs afterwards, by `control_setup.key`), and kept in `store` when given; a single model whose
    recipe is the ensemble's (same key) gets the ensemble members' seed spread. `protocol`: the numbers of draws,
    windows and resamples (default: `Protocol()`)."""
    say = log or (lambda _msg: None)
    sizes = (protocol or Protocol()).analyse_kwargs()
    cache = {} if cache is None else cache
    members = tensors.get("ensemble", {}).get("member_attention")
    ens_key = control_key(*loaded["ensemble"]) if "ensemble" in loaded and members is not None else None
    out = {}
    for name, (ckpt, data) in loaded.items():
        t = tensors[name]
        extra = {}
        if name != "ensemble" and ens_key is not None and members is not None and control_key(ckpt, data) == ens_key:
            extra = {
                "seed_attention": members,
                "seed_source": f"the ensemble's {members.shape[1]} members, which are this recipe with "
                f"{members.shape[1]} seeds",
            }
        started = time.perf_counter()
        out[name] = analyse(
            ckpt,
            data,
            t["attention"],
            t.get("attention_maps"),
            t.get("member_attention"),
            scale_attention=t.get("scale_attention"),
            control_cache=cache,
            control_store=store,
            seed=seed,
            **sizes,
            **extra,
        )
        setup = out[name].analysis.control_setup
        say(
            f"{name}: {out[name].analysis.verdict.to_dict()} ({time.perf_counter() - started:.0f} s; controls "
            f"{'reused' if setup and setup.reused else 'trained'})"
        )
    return out
