"""Checks that decide whether a model's attention means anything.

* Controls: the same architecture untrained, and trained on shuffled targets.
  Attention that looks like theirs says nothing about the data. The shuffled-target
  control trains on at most the most recent `CONTROL_MAX_TRAIN_WINDOWS` (8,760, about
  365 days) windows of the training split: it has to show what the architecture does
  with no signal, which a year shows as well as a decade, at a fraction of the cost.
* Uniform ablation: the error change when the attention is replaced by uniform
  weights, with a block-bootstrap interval. Attention the model relies on costs
  accuracy when removed.
* Deletion: zeroing (the training mean, in scaled units) each window's top-k attended
  hours, against a position-matched null: the top-k positions of *other* windows'
  attention (a random permutation of windows, `draws` times). A recurrent model
  moves more when recent hours are deleted whatever the attention says, so a
  recency-shaped map beats uniformly random hours without marking anything; against
  the matched null it does not. Beside it: deleting the k most recent hours (the
  recency baseline) and k uniformly random hours (not position matched, for context).
* Attribution agreement: Spearman rank correlation between attention and
  integrated gradients per hour (Captum), median over windows.
"""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch import nn

from workflows.attention import metrics as am
from workflows.io import write_with
from workflows.ml.models import ArchConfig, supports_uniform_ablation
from workflows.ml.training import TrainConfig, predict, select_device, train
from workflows.ml.windows import Split, WindowData

ALPHA = 0.05
# Effect-size margin: the top-k deletion must move predictions at least this many
# times as much as the null's mean deletion, on top of p < ALPHA.
MIN_DELETION_RATIO = 1.5
# Relied upon: uniform weights raise the test MSE by more than this, with the
# interval of the change above zero.
MIN_ABLATION_CHANGE = 0.01
CONTROL_MAX_TRAIN_WINDOWS = 8760  # the most recent ~365 days of hourly training windows
ATTENTION_KEYS = ("attention", "scale_attention", "attention_maps")


def _attention_outputs(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: out[k] for k in ATTENTION_KEYS if k in out}


def untrained_outputs(arch: ArchConfig, x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Attention outputs (`attention`, and `scale_attention` / `attention_maps` when the model has them)."""
    torch.manual_seed(seed)
    return _attention_outputs(predict(arch.build(), x))


def _tail(split: Split, m: int) -> Split:
    if len(split) <= m:
        return split
    return Split(
        x=split.x[-m:],
        ret=split.ret[-m:],
        vol=split.vol[-m:],
        direction=split.direction[-m:],
        end_ts=split.end_ts[-m:],
        raw_ret=split.raw_ret[-m:],
    )


def shuffled_target_outputs(
    arch: ArchConfig,
    data: WindowData,
    config: TrainConfig,
    seed: int = 0,
    max_train_windows: int = CONTROL_MAX_TRAIN_WINDOWS,
) -> dict[str, np.ndarray]:
    """Attention outputs on the test windows of a model trained on permuted targets of the
    most recent `max_train_windows` training windows (validation split unchanged)."""
    model = shuffled_target_model(arch, data, config, seed=seed, max_train_windows=max_train_windows)
    return attention_of(model, data.test.x)


def attention_of(model: nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """A model's attention outputs on windows `x` (`ATTENTION_KEYS` it has)."""
    return _attention_outputs(predict(model, x))


def shuffled_target_model(arch: ArchConfig, data: WindowData, config: TrainConfig, **options) -> nn.Module:
    """The shuffled-target control (see `shuffled_target_outputs`); with a `store`, read back when one
    was trained for the same architecture, config, seed and training slice, else trained (warm-started
    from the store's previous control when it has one) and written there. `options`: those of
    `stored_or_trained_control`."""
    return stored_or_trained_control(arch, data, config, **options)[0]


def stored_or_trained_control(
    arch: ArchConfig,
    data: WindowData,
    config: TrainConfig,
    seed: int = 0,
    max_train_windows: int = CONTROL_MAX_TRAIN_WINDOWS,
    store: "ControlStore | None" = None,
) -> tuple[nn.Module, bool]:
    """`shuffled_target_model`, and whether it was read back from the store (True) or trained."""
    name = store.name(arch, config, seed) if store is not None else ""
    if store is not None:
        model = store.load(name, arch, data.data_version)
        if model is not None:
            return model, True
    rng = np.random.default_rng(seed)
    recent = _tail(data.train, max_train_windows)
    perm = rng.permutation(len(recent))
    shuffled = replace(
        data, train=replace(recent, ret=recent.ret[perm], vol=recent.vol[perm], direction=recent.direction[perm])
    )
    torch.manual_seed(seed)
    model, cfg = arch.build(), replace(config, snapshot_every=0, seed=seed)
    warm = store.warm_start(name, arch) if store is not None else None
    if warm is not None:
        model = warm
        cfg = replace(cfg, epochs=min(store.warm_epochs, cfg.epochs), patience=store.warm_patience)  # type: ignore[union-attr]
    result = train(model, shuffled, cfg)
    if store is not None:
        store.keep(name, result.model, data.data_version)
    return result.model, False


@dataclass(frozen=True)
class ControlStore:
    """Trained shuffled-target controls on disk, so that each is trained once per forecast period and
    architecture and reused by every later analysis of that period (a period's training slice does not
    change as its hours arrive). `previous`: the previous period's folder, whose control of the same
    architecture warm-starts this one (at most `warm_epochs` epochs), as the period models do.

    A file holds the state dict and the training slice (`data_version`) it was trained on; one trained on
    another slice (corrected candles before the period) is retrained, not reused."""

    folder: Path
    previous: Path | None = None
    warm_epochs: int = 5
    warm_patience: int = 2

    @staticmethod
    def name(arch: ArchConfig, config: TrainConfig, seed: int) -> str:
        skip = ("seed", "snapshot_every", "snapshot_size", "device")
        cfg = {k: v for k, v in config.to_dict().items() if k not in skip}
        text = json.dumps({"arch": arch.to_dict(), "train": cfg, "seed": seed}, sort_keys=True, default=str)
        return f"shuffled-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"

    def _read(self, path: Path, arch: ArchConfig) -> tuple[nn.Module, str] | None:
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = arch.build()
            model.load_state_dict(state["model"])
        except Exception:  # unreadable or another architecture: not reused, retrained
            return None
        return model, str(state.get("data_version", ""))

    def load(self, name: str, arch: ArchConfig, data_version: str) -> nn.Module | None:
        got = self._read(self.folder / name, arch)
        return got[0] if got is not None and got[1] == data_version else None

    def warm_start(self, name: str, arch: ArchConfig) -> nn.Module | None:
        got = self._read(self.previous / name, arch) if self.previous is not None else None
        return got[0] if got is not None else None

    def keep(self, name: str, model: nn.Module, data_version: str) -> None:
        state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "data_version": data_version}
        self.folder.mkdir(parents=True, exist_ok=True)
        write_with(self.folder / name, lambda tmp: torch.save(state, tmp))

    def trained(self) -> list[Path]:
        return sorted(self.folder.glob("shuffled-*.pt")) if self.folder.exists() else []


@contextmanager
def _on_device(model: nn.Module, device: str) -> Iterator[None]:
    """Run the checks on `device` ("auto": CUDA, then MPS, then CPU), leaving the model where it was."""
    params = list(model.parameters())
    before = params[0].device if params else torch.device("cpu")
    model.to(select_device(device))
    try:
        yield
    finally:
        model.to(before)


# The forecast the checks read: the return, or for a volatility model the next hour's volatility
# (where intraday structure shows; its changes are compared on the log scale, its loss is QLIKE).
OUTPUTS = ("ret", "vol_next")


def _pick(out, output: str) -> torch.Tensor:
    if output == "ret":
        return out.ret
    if output == "vol_next":
        return out.vol_next.log()
    raise ValueError(f"unknown output {output!r}: choose one of {', '.join(OUTPUTS)}")


@torch.no_grad()
def _ret(model: nn.Module, x: np.ndarray, batch: int = 2048, output: str = "ret", **kwargs) -> np.ndarray:
    """The model's forecast `output` (log volatility for "vol_next") over windows `x`."""
    model.eval()
    params = list(model.parameters())
    dev = params[0].device if params else torch.device("cpu")
    return np.concatenate(
        [
            _pick(model(torch.as_tensor(x[s : s + batch], device=dev), **kwargs), output).float().cpu().numpy()
            for s in range(0, len(x), batch)
        ]
    )


def _losses(forecast: np.ndarray, y: np.ndarray, output: str) -> np.ndarray:
    """Per-window loss: squared error of a return, QLIKE of a volatility (log) against the squared return."""
    if output == "ret":
        return (forecast - y) ** 2
    realised = np.maximum(np.asarray(y, float) ** 2, 1e-6)
    ratio = realised / np.exp(2 * np.asarray(forecast, float))
    return ratio - np.log(ratio) - 1


@dataclass(frozen=True)
class UniformAblation:
    """Test loss (scaled target units) with the model's attention and with uniform weights: MSE of the
    return, or QLIKE of the next hour's volatility for a volatility model (`loss`)."""

    mse_attention: float
    mse_uniform: float
    relative_change: float  # mse_uniform / mse_attention - 1
    relative_change_ci: tuple[float, float]  # block bootstrap over windows
    relied_upon: bool  # change > MIN_ABLATION_CHANGE and interval above 0
    loss: str = "MSE"

    def to_dict(self) -> dict:
        return {**self.__dict__, "relative_change_ci": list(self.relative_change_ci)}


def uniform_ablation(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    resamples: int = am.DEFAULT_RESAMPLES,
    device: str = "auto",
    output: str = "ret",
) -> UniformAblation | None:
    """None for models whose attention cannot be swapped for uniform weights (the Transformer)."""
    losses = ablation_losses(model, x, y, device, output)
    return None if losses is None else ablation_from_losses(*losses, output=output, seed=seed, resamples=resamples)


def ablation_losses(
    model: nn.Module, x: np.ndarray, y: np.ndarray, device: str = "auto", output: str = "ret"
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-window losses with the model's attention and with uniform weights (None: not swappable)."""
    if not supports_uniform_ablation(model):
        return None
    with _on_device(model, device):
        err_a = _losses(_ret(model, x, output=output), y, output)
        err_u = _losses(_ret(model, x, output=output, uniform_attention=True), y, output)
    return err_a, err_u


def ablation_from_losses(
    err_a: np.ndarray, err_u: np.ndarray, output: str = "ret", seed: int = 0, resamples: int = am.DEFAULT_RESAMPLES
) -> UniformAblation:
    """`UniformAblation` of per-window losses (one model's windows, or several periods' models' pooled)."""
    change = float(err_u.mean() / err_a.mean() - 1)
    lo, hi = am.ratio_interval(err_u, err_a, resamples=resamples, seed=seed)
    return UniformAblation(
        float(err_a.mean()),
        float(err_u.mean()),
        change,
        (lo - 1, hi - 1),
        bool(change > MIN_ABLATION_CHANGE and lo - 1 > 0),
        "MSE" if output == "ret" else "QLIKE",
    )


@dataclass(frozen=True)
class DeletionTest:
    """Mean |change in the forecast| (scaled units) after zeroing k hours of every window.

    `faithful`: each window's own top-k hours move forecasts more than the top-k
    positions of other windows (matched p < ALPHA, `draws` permutations) and at least
    `margin` times as much on average, AND more than deleting the window's k hours
    with the largest inputs (the size baseline: block-bootstrap interval of the ratio
    above 1): the map marks, window by window, hours that matter beyond where it looks
    on average and beyond where the inputs are merely large. Deleting a large input
    moves any forecast; a map that only points at large inputs (on a model that never
    reads its attention) passes the matched test but not the size baseline.
    `positions_matter`: the top-k deletion beats k uniformly random hours (p < ALPHA,
    ratio >= margin) and the k most recent hours (block-bootstrap interval of the ratio
    above 1): the hours attended to matter more than random ones and than a recency
    prior. A map that looks at the same hours in every window can pass this but not
    `faithful` (its matched null deletes the same hours); read its mean profile.
    """

    k: int
    windows: int
    top_k_change: float
    draws: int
    matched_change_mean: float
    matched_change_p95: float
    matched_ratio: float
    matched_p_value: float
    matched_overlap: float  # mean share of a window's top-k positions that its matched window shares
    recency_change: float
    recency_ratio: float
    recency_ratio_ci: tuple[float, float]
    random_draws: int
    random_change_mean: float
    random_ratio: float
    random_p_value: float
    margin: float
    faithful: bool
    positions_matter: bool
    size_change: float = float("nan")  # deleting each window's k largest-|input| hours
    size_ratio: float = float("nan")
    size_ratio_ci: tuple[float, float] = (float("nan"), float("nan"))
    # where the current month's nulls cover fewer windows than its changes (`DeletionEvidence.null_windows`): the
    # UTC date they were computed and the newest hour they cover; "" when every null covers every window
    nulls_computed_on: str = ""
    nulls_through: str = ""

    @property
    def beats_size(self) -> bool:
        return bool(self.size_ratio_ci[0] > 1)

    def to_dict(self) -> dict:
        return {
            **self.__dict__,
            "recency_ratio_ci": list(self.recency_ratio_ci),
            "size_ratio_ci": list(self.size_ratio_ci),
        }


def _deleted(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[np.arange(len(x))[:, None], positions] = 0.0
    return out


def _mc_p(null: np.ndarray, observed: float) -> float:
    """Monte Carlo p-value: share of null draws at least as large as the observed value."""
    return float((np.sum(null >= observed) + 1) / (len(null) + 1))


def deletion_test(
    model: nn.Module,
    x: np.ndarray,
    attention: np.ndarray,
    k: int = 5,
    draws: int = 200,
    random_draws: int = 100,
    seed: int = 0,
    margin: float = MIN_DELETION_RATIO,
    resamples: int = am.DEFAULT_RESAMPLES,
    device: str = "auto",
    output: str = "ret",
) -> DeletionTest:
    """Top-k deletion against the position-matched null, the largest-|input| hours, the recency baseline
    and random hours (1 + draws + 2 + random_draws forward passes over the windows, on `device`)."""
    ev = deletion_evidence(model, x, attention, NullDraws(k, draws, random_draws, seed), device, output)
    return deletion_from_evidence(ev, margin=margin, resamples=resamples, seed=seed)


@dataclass(frozen=True)
class DeletionEvidence:
    """The deletion test's raw changes: per window (top-k, recency, size) and per null draw the SUM of the
    changes over the windows (matched, random) and of the matched overlap, so that the evidence of several
    forecast periods pools exactly: the pooled null's draw j permutes windows within each period (each period
    is its own model) and adds the periods' sums.

    `null_windows`: how many windows (the first ones) the null sums cover. A month whose hours are still arriving
    appends its new windows' own changes daily but recomputes its nulls only weekly and when it closes
    (`workflows.attention.period_run`): between, its nulls cover fewer windows than its changes, and are read as
    per-window means (`null_means`). `nulls_computed_on`: the UTC date they were computed, `nulls_through`: the
    newest hour they cover ("" where unknown)."""

    k: int
    top: np.ndarray
    recent: np.ndarray
    size: np.ndarray
    matched_sums: np.ndarray  # (draws,)
    overlap_sums: np.ndarray  # (draws,)
    random_sums: np.ndarray  # (random_draws,)
    null_windows: int | None = None  # None: every window
    nulls_computed_on: str = ""
    nulls_through: str = ""

    @property
    def covered(self) -> int:
        return len(self.top) if self.null_windows is None else self.null_windows

    @property
    def nulls_current(self) -> bool:
        return self.covered == len(self.top)

    def scaled_sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The null sums over every window: as stored when they cover them all, else their per-window means over
        the windows they cover times the windows."""
        f = len(self.top) / self.covered if self.covered else 1.0
        if f == 1.0:
            return self.matched_sums, self.overlap_sums, self.random_sums
        return self.matched_sums * f, self.overlap_sums * f, self.random_sums * f

    @classmethod
    def concat(cls, parts: "list[DeletionEvidence]") -> "DeletionEvidence":
        draws = min(len(p.matched_sums) for p in parts)
        random_draws = min(len(p.random_sums) for p in parts)
        sums = [p.scaled_sums() for p in parts]
        stale = [p for p in parts if not p.nulls_current]
        return cls(
            k=parts[0].k,
            top=np.concatenate([p.top for p in parts]),
            recent=np.concatenate([p.recent for p in parts]),
            size=np.concatenate([p.size for p in parts]),
            matched_sums=np.sum([m[:draws] for m, _, _ in sums], axis=0),
            overlap_sums=np.sum([o[:draws] for _, o, _ in sums], axis=0),
            random_sums=np.sum([r[:random_draws] for _, _, r in sums], axis=0),
            nulls_computed_on=min((p.nulls_computed_on for p in stale), default=""),
            nulls_through=min((p.nulls_through for p in stale), default=""),
        )


@dataclass(frozen=True)
class NullDraws:
    """The deletion test's sizes: k hours deleted per window, `draws` position-matched permutations of the windows
    and `random_draws` deletions of k random hours, drawn from `seed`."""

    k: int = 5
    draws: int = 200
    random_draws: int = 100
    seed: int = 0


def deletion_evidence(
    model: nn.Module,
    x: np.ndarray,
    attention: np.ndarray,
    nulls: NullDraws = NullDraws(),
    device: str = "auto",
    output: str = "ret",
) -> DeletionEvidence:
    """Every window's own changes and the null draws' sums, on `device`."""
    with _on_device(model, device):
        top, recent, size = deletion_changes(model, x, attention, nulls.k, output=output)
        matched, overlap, random_null = deletion_nulls(model, x, attention, nulls, output=output)
    return DeletionEvidence(nulls.k, top, recent, size, matched, overlap, random_null, null_windows=len(x))


def _top_positions(attention: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-attention, axis=1, kind="stable")[:, :k]


def deletion_changes(
    model: nn.Module, x: np.ndarray, attention: np.ndarray, k: int = 5, output: str = "ret"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window, |change in the forecast| after deleting its top-k attention hours, its k most recent hours and
    its k largest-|input| hours: each window's own, so the changes of new windows append to the old ones'."""
    n, t = attention.shape
    base = _ret(model, x, output=output)

    def changes(positions: np.ndarray) -> np.ndarray:
        return np.abs(_ret(model, _deleted(x, positions), output=output) - base)

    top_changes = changes(_top_positions(attention, k))
    recent_changes = changes(np.broadcast_to(np.arange(t - k, t), (n, k)))
    size = np.abs(np.asarray(x, float)).sum(axis=2)  # |input| of each hour, summed over its features
    size_changes = changes(np.argsort(-size, axis=1, kind="stable")[:, :k])
    return top_changes, recent_changes, size_changes


def deletion_nulls(
    model: nn.Module, x: np.ndarray, attention: np.ndarray, nulls: NullDraws = NullDraws(), output: str = "ret"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per null draw, the SUM over the windows of the changes after deleting another window's top-k positions (a
    permutation of the windows), of the overlap of those positions with the window's own, and of the changes after
    deleting k random hours: a permutation spans every window, so these are recomputed over all of them."""
    k, draws, random_draws = nulls.k, nulls.draws, nulls.random_draws
    rng = np.random.default_rng(nulls.seed)
    n, t = attention.shape
    top = _top_positions(attention, k)
    base = _ret(model, x, output=output)

    def changes(positions: np.ndarray) -> np.ndarray:
        return np.abs(_ret(model, _deleted(x, positions), output=output) - base)

    matched, overlap = np.empty(draws), np.empty(draws)
    for j in range(draws):
        partner = top[rng.permutation(n)]
        matched[j] = changes(partner).sum()
        overlap[j] = (top[:, :, None] == partner[:, None, :]).any(axis=2).sum()
    random_null = np.array([changes(np.argsort(rng.random((n, t)), axis=1)[:, :k]).sum() for _ in range(random_draws)])
    return matched, overlap, random_null


def deletion_from_evidence(
    ev: DeletionEvidence, margin: float = MIN_DELETION_RATIO, resamples: int = am.DEFAULT_RESAMPLES, seed: int = 0
) -> DeletionTest:
    n, k, draws, random_draws = len(ev.top), ev.k, len(ev.matched_sums), len(ev.random_sums)
    top_changes, recent_changes, size_changes = ev.top, ev.recent, ev.size
    matched, overlap, random_null = (s / n for s in ev.scaled_sums())
    top_change = float(top_changes.mean())

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else float("inf")

    matched_ratio, matched_p = ratio(top_change, float(matched.mean())), _mc_p(matched, top_change)
    random_ratio, random_p = ratio(top_change, float(random_null.mean())), _mc_p(random_null, top_change)
    recency_ci = am.ratio_interval(top_changes, recent_changes, resamples=resamples, seed=seed)
    if size_changes.mean() > 0:
        size_ci = am.ratio_interval(top_changes, size_changes, resamples=resamples, seed=seed)
    else:  # the largest inputs move nothing: any change beats them
        size_ci = (np.inf, np.inf) if top_change > 0 else (1.0, 1.0)
    return DeletionTest(
        k=k,
        windows=n,
        top_k_change=top_change,
        draws=draws,
        matched_change_mean=float(matched.mean()),
        matched_change_p95=float(np.percentile(matched, 95)),
        matched_ratio=matched_ratio,
        matched_p_value=matched_p,
        matched_overlap=float(overlap.mean()),
        recency_change=float(recent_changes.mean()),
        recency_ratio=ratio(top_change, float(recent_changes.mean())),
        recency_ratio_ci=recency_ci,
        random_draws=random_draws,
        random_change_mean=float(random_null.mean()),
        random_ratio=random_ratio,
        random_p_value=random_p,
        margin=margin,
        faithful=bool(matched_p < ALPHA and matched_ratio >= margin and size_ci[0] > 1),
        positions_matter=bool(random_p < ALPHA and random_ratio >= margin and recency_ci[0] > 1),
        size_change=float(size_changes.mean()),
        size_ratio=ratio(top_change, float(size_changes.mean())),
        size_ratio_ci=(float(size_ci[0]), float(size_ci[1])),
        nulls_computed_on="" if ev.null_windows == n else ev.nulls_computed_on,
        nulls_through="" if ev.null_windows == n else ev.nulls_through,
    )


@dataclass(frozen=True)
class Attribution:
    """Agreement of attention with integrated-gradients importance per hour."""

    windows: int
    median_spearman: float
    windows_with_variation: int
    top_attributed_hour: int  # hours ago of the largest mean importance
    mean_importance: list[float]  # per position, oldest first, sums to 1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def attribution_agreement(
    model: nn.Module, x: np.ndarray, attention: np.ndarray, max_windows: int = 128, output: str = "ret"
) -> Attribution:
    """Median Spearman correlation between attention and integrated-gradients importance per hour."""
    return attribution_from_evidence(attribution_evidence(model, x, attention, max_windows, output))


def attribution_evidence(
    model: nn.Module, x: np.ndarray, attention: np.ndarray, max_windows: int = 128, output: str = "ret"
) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the Spearman correlation of attention and integrated-gradients importance (nan where
    either is constant), and the importance per hour (n, T)."""
    from captum.attr import IntegratedGradients

    model.eval()
    n = min(len(x), max_windows)
    xt = torch.as_tensor(x[:n]).requires_grad_(True)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return _pick(model(inputs), output)

    ig = IntegratedGradients(forward)
    attributions = ig.attribute(xt, baselines=torch.zeros_like(xt), n_steps=32, internal_batch_size=8 * n)
    importance = attributions.detach().abs().sum(dim=-1).numpy()  # (n, T)
    rhos = [
        np.nan if np.std(a) < 1e-12 or np.std(imp) < 1e-12 else float(stats.spearmanr(a, imp)[0])  # type: ignore[arg-type]
        for a, imp in zip(attention[:n], importance)
    ]
    return np.asarray(rhos, dtype=float), importance


def attribution_from_evidence(evidence: tuple[np.ndarray, np.ndarray]) -> Attribution:
    all_rhos, importance = evidence
    rhos = all_rhos[np.isfinite(all_rhos)]
    mean_importance = importance.mean(axis=0)
    return Attribution(
        windows=len(all_rhos),
        median_spearman=float(np.median(rhos)) if len(rhos) else float("nan"),
        windows_with_variation=len(rhos),
        top_attributed_hour=int(importance.shape[1] - int(mean_importance.argmax())),
        mean_importance=(mean_importance / mean_importance.sum()).tolist(),
    )
