"""Trained checkpoints on their test split: predictions, and the single-split evaluation
with the trained controls (used when the history is too short for walk-forward)."""

import time
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch

from workflows.evaluation.evidence import Evaluation, FoldSpan, ReturnMetrics, evaluate_forecasts, return_metrics
from workflows.evaluation.walk_forward import Progress, forecast_set, forecaster_recipes, model_forecasts
from workflows.ml.checkpoints import Checkpoint
from workflows.ml.models import ArchConfig
from workflows.ml.periods import ForecastPeriod, PeriodConfig, period_windows, training_slice_version
from workflows.ml.profiles import control_kinds
from workflows.ml.training import predict, train
from workflows.ml.windows import WindowData, WindowSpec, build_windows


class StaleModelError(RuntimeError):
    """The checkpoint was trained on other feature data than the table holds now."""


@dataclass
class Predictions:
    """Test-split forecasts in raw log-return units, with the model's attention."""

    ret: np.ndarray
    var: np.ndarray | None
    vol: np.ndarray | None
    attention: np.ndarray
    attention_maps: np.ndarray | None
    member_attention: np.ndarray | None
    outputs: dict


def window_data_for(ckpt: Checkpoint, features: pl.DataFrame, data_version: str) -> WindowData:
    if ckpt.data_version != data_version:
        raise StaleModelError(
            f"{ckpt.path.name} was trained on features version {ckpt.data_version} but the table now holds "
            f"{data_version}: rematerialise the model assets first (a `-lastNd` suffix is the history window: give the "
            "analysis the same `history_days` as the models)"
        )
    spec = dict(ckpt.window_spec)
    spec["features"] = tuple(spec["features"])
    return build_windows(features, WindowSpec(**spec), data_version=data_version)


def period_window_data(ckpt: Checkpoint, features: pl.DataFrame, period: str, cfg: PeriodConfig) -> WindowData:
    """A period model's windows: training and validation before the period, the period's hours as its test split
    (the hours its forecasts in the log are about). Refuses a model trained on another training slice."""
    spec = dict(ckpt.window_spec)
    spec["features"] = tuple(spec["features"])
    window_spec, p = WindowSpec(**spec), ForecastPeriod.from_key(period)
    version = training_slice_version(features, window_spec, p, cfg)
    if ckpt.data_version != version:
        raise StaleModelError(
            f"{ckpt.path.name} (period {p}) was trained on training slice {ckpt.data_version}, but the features before "
            f"{p.start:%Y-%m-%d} now hash to {version}: rematerialise that period's models"
        )
    return period_windows(features, window_spec, p, cfg, version)


def predictions(ckpt: Checkpoint, data: WindowData) -> Predictions:
    out = predict(ckpt.model, data.test.x)
    scale = data.scaler.target_scale
    var = None
    if "log_var" in out:
        var = np.exp(out["log_var"]) * scale**2
    elif "member_spread" in out:
        var = out["member_spread"] ** 2 * scale**2
    return Predictions(
        ret=out["ret"] * scale,
        var=var,
        vol=out["vol"] * scale if "vol" in out else None,
        attention=out["attention"],
        attention_maps=out.get("attention_maps"),
        member_attention=out.get("member_attention"),
        outputs=out,
    )


def single_split(
    loaded: dict[str, tuple[Checkpoint, WindowData]],
    features: pl.DataFrame,
    profile: str | None,
    note: str,
    progress: Progress | None = None,
) -> Evaluation:
    """Every model asset's checkpoint on its own test split, with the trained controls fitted on the
    same training hours and scored on the same test hours (the weaker evidence: one split)."""
    say = progress or (lambda _msg: None)
    outputs = {}
    for name, (ckpt, data) in loaded.items():
        outputs[name] = model_forecasts(data, predictions(ckpt, data).outputs)
    recipes = forecaster_recipes(profile)
    base = loaded["attention_lstm"][1] if "attention_lstm" in loaded else next(iter(loaded.values()))[1]
    for name in control_kinds():
        recipe = recipes[name]
        data = (
            base
            if tuple(base.spec.features) == recipe.features
            else next(d for _, d in loaded.values() if tuple(d.spec.features) == recipe.features)
        )
        t0 = time.perf_counter()
        torch.manual_seed(recipe.train.seed)
        model = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads)).build()
        result = train(model, data, replace(recipe.train, snapshot_every=0))
        outputs[name] = model_forecasts(data, predict(result.model, data.test.x))
        say(f"control {name} trained on the same split: {result.epochs_run} epochs, {time.perf_counter() - t0:.0f} s")
    fs, errors = forecast_set(features, base, outputs)
    return evaluate_forecasts(fs, "single_split", note, [FoldSpan.of(base)], {"profile": profile}, errors)


def split_metrics(loaded: dict[str, tuple[Checkpoint, WindowData]]) -> dict[str, ReturnMetrics]:
    """Each model asset on its own test split (descriptive; no family, no controls)."""
    out = {}
    for name, (ckpt, data) in loaded.items():
        if not ckpt.forecasts_returns:  # a volatility model: judged on variances only
            continue
        f = model_forecasts(data, predictions(ckpt, data).outputs)
        out[name] = return_metrics(f["ret"], data.test.raw_ret, float(np.mean(data.train.raw_ret)), f.get("var"))
    return out
