"""Fit one model kind from a recipe: the function the Dagster assets and the CLI call."""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workflows.ml.checkpoints import Checkpoint, save_checkpoint
from workflows.ml.models import REFERENCE_TRANSFORMER_PARAMS, ArchConfig, Ensemble, count_parameters
from workflows.ml.profiles import Recipe
from workflows.ml.training import EpochReport, TrainResult, predict, train
from workflows.ml.training_summary import EpochLoss, TrainingSummary
from workflows.ml.windows import WindowData, training_window
from workflows.stats.losses import qlike
from workflows.stats.significance import skill


@dataclass
class FitResult:
    model: nn.Module
    arch: ArchConfig | list[ArchConfig]
    runs: list[TrainResult]
    metrics: TrainingSummary
    checkpoint: Path
    sha256: str


def _member_seed(recipe: Recipe, member: int) -> int:
    return recipe.train.seed + 1000 * member


def fit(
    recipe: Recipe,
    data: WindowData,
    checkpoint_dir: str | os.PathLike,
    name: str,
    callback: Callable[[int, EpochReport], None] | None = None,
    warm: Checkpoint | None = None,
    warm_epochs: int = 5,
    warm_patience: int = 2,
    first_member: Checkpoint | None = None,
) -> FitResult:
    """Train the recipe's model (every member of an ensemble), save the checkpoint.

    Each member keeps a resume file keyed by recipe and data version, so a crashed
    run continues after its last finished epoch; the file is removed on success.

    `warm`: start every member from that checkpoint's weights (the previous forecast
    period's model of the same recipe) and train at most `warm_epochs` epochs; it must
    have the same architecture (`warm_start_compatible`).

    `first_member`: for an ensemble, a single model already trained exactly as member 0 would be (its
    architecture, seed, training config, windows and warm start: the `attention_lstm` period model, which
    `period_models.shared_first_member` checks); it becomes member 0 instead of being trained again, and its
    recorded training figures stand for that member's.
    """
    checkpoint_dir = Path(checkpoint_dir)
    n_features = len(recipe.features)
    archs = [
        ArchConfig(recipe.arch, n_features, dict(recipe.kwargs), dict(recipe.heads)) for _ in range(recipe.members)
    ]
    if warm is not None and not warm_start_compatible(warm, archs):
        raise ValueError(f"{warm.path.name} has another architecture than the {name} recipe: it cannot warm-start it")
    runs: list[TrainResult] = []
    resume_files = []
    for member, arch in enumerate(archs):
        if member == 0 and first_member is not None and len(archs) > 1:
            runs.append(recorded_run(first_member))
            continue
        torch.manual_seed(_member_seed(recipe, member))
        model = arch.build()
        config = replace(recipe.train, seed=_member_seed(recipe, member))
        if warm is not None:
            source = warm.model.members[member] if isinstance(warm.model, Ensemble) else warm.model
            model.load_state_dict(source.state_dict())
            config = replace(config, epochs=min(warm_epochs, config.epochs), patience=warm_patience)
        resume = checkpoint_dir / ".resume" / f"{name}-{recipe.fingerprint()}-{data.data_version}-m{member}.pt"
        resume_files.append(resume)
        runs.append(
            train(
                model,
                data,
                config,
                callback=(lambda r, m=member: callback(m, r)) if callback else None,
                resume_path=resume,
            )
        )

    model: nn.Module = runs[0].model if recipe.members == 1 else Ensemble([r.model for r in runs])
    arch_out: ArchConfig | list[ArchConfig] = archs[0] if recipe.members == 1 else archs
    metrics = summarise(recipe, data, model, runs)
    tag = f"{name}-{data.data_version or 'nodata'}-{recipe.fingerprint()}"
    path, digest = save_checkpoint(
        checkpoint_dir / f"{tag}.pt",
        model,
        arch_out,
        data.scaler,
        data.spec_dict(),
        data.data_version,
        metrics.to_dict(),
        recipe.train.to_dict(),
        runs[0].snapshots,
    )
    for resume in resume_files:
        resume.unlink(missing_ok=True)
    return FitResult(model, arch_out, runs, metrics, path, digest)


def recorded_run(ckpt: Checkpoint) -> TrainResult:
    """A trained single model's checkpoint as the `TrainResult` its training returned (weights, history, best
    epoch, snapshots; the timings are the ones it recorded)."""
    m = ckpt.metrics
    return TrainResult(
        model=ckpt.model,
        history=[dict(h) for h in m.get("history", [])],
        best_epoch=int(m.get("best_epoch", 0)),
        best_val_loss=float(m.get("best_val_loss", float("nan"))),
        epochs_run=int(m.get("epochs_run", 0)),
        wall_s=float(m.get("wall_s", 0.0)),
        samples_per_s=float(m.get("samples_per_s", 0.0)),
        device=str(m.get("device", "cpu")),
        stopped_early=bool(m.get("stopped_early", False)),
        snapshots=list(ckpt.snapshots),
    )


def warm_start_compatible(warm: Checkpoint, archs: list[ArchConfig]) -> bool:
    """True when `warm` holds one model per member of `archs`, each of the same architecture."""
    theirs = warm.arch if isinstance(warm.arch, list) else [warm.arch]
    same = [
        json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
        for a, b in zip(theirs, archs)
    ]
    return len(theirs) == len(archs) and all(same)


def summarise(recipe: Recipe, data: WindowData, model: nn.Module, runs: list[TrainResult]) -> TrainingSummary:
    """Training figures for the UI and the report, with the validation skill against the zero forecast
    (a volatility model: its 24-hour QLIKE against the constant training variance)."""
    val = predict(model, data.val.x)
    if recipe.forecasts_returns:
        mse = float(np.mean((val["ret"] - data.val.ret) ** 2))
        fit = {"val_mse_scaled": mse, "val_skill_vs_zero": skill(mse, float(np.mean(data.val.ret**2)))}
    else:
        q_model = qlike(val["vol"] ** 2, data.val.vol**2)
        q_const = qlike(np.full(len(data.val), float(np.mean(data.train.ret**2))), data.val.vol**2)
        fit = {"val_qlike_24h": q_model, "val_skill_vs_constant": skill(q_model, q_const)}
    windows = data.summary()
    return TrainingSummary(
        kind=recipe.kind,
        architecture=recipe.arch,
        parameters=count_parameters(model),
        members=recipe.members,
        epochs_run=int(sum(r.epochs_run for r in runs)),
        best_epoch=int(runs[0].best_epoch),
        best_val_loss=float(np.mean([r.best_val_loss for r in runs])),
        stopped_early=any(r.stopped_early for r in runs),
        device=runs[0].device,
        wall_s=float(sum(r.wall_s for r in runs)),
        samples_per_s=float(np.mean([r.samples_per_s for r in runs])),
        **windows,
        **fit,
        # the hours fitting saw (last train / validation window end, last target hour): the promotion gate
        # compares models only on forecast hours after both models' `last_target_ts`
        **training_window(data),
        # first member's per-epoch losses, for the report's training curves
        history=tuple(EpochLoss.from_dict(h) for h in runs[0].history),
        reference_parameters=REFERENCE_TRANSFORMER_PARAMS if recipe.arch == "transformer" else None,
    )
