"""Forecasts of every model and control on common test hours: walk-forward or one split.

Walk-forward (rolling origin): the last `folds` periods of `fold_days` each are test
periods. Before each, every model kind and every trained control is retrained on up
to `train_days` of history that ends before it (a `val_days` validation slice for
early stopping, and the embargo of window + 24 hours between training, validation
and test), then forecasts the test period. The test hours of all folds are pooled,
so a long history gives the tests many more hours than a single split can.

Warm start (default on): from the second fold on, each network starts from its own
weights of the previous fold and trains at most `warm_epochs` epochs on the new
training window. Every weight it holds was still fitted on hours before the fold's
test period, so nothing leaks; it makes the default affordable on 2 CPU cores.

The ensemble is five seeds of exactly the `attention_lstm` recipe; its first member
has that recipe's seed, so it IS the `attention_lstm` model of the fold and is not
trained twice.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import polars as pl
import torch
from scipy.special import softmax
from torch import nn

from workflows.data.sources.candles import ts_bounds
from workflows.evaluation.baselines import LogRecalibration, RidgeAR, volatility_baselines
from workflows.evaluation.evidence import (
    RECALIBRATED,
    VOL_FORECASTERS,
    VOLATILITY_MODEL,
    VOLATILITY_TWIN,
    Evaluation,
    FoldSpan,
    ForecastSet,
    evaluate_forecasts,
)
from workflows.ml.models import ArchConfig
from workflows.ml.profiles import Recipe, control_kinds, control_recipe, model_kinds, recipe_for
from workflows.ml.progress import FoldProgress
from workflows.ml.training import predict, train
from workflows.ml.windows import DIRECTION_NAMES, WindowData, build_fold

HOURS_PER_DAY = 24
Progress = Callable[[str], None]


@dataclass(frozen=True)
class WalkForwardConfig:
    folds: int = 4
    fold_days: int = 100  # 4 x 100 days: over a year of test hours even after the hours gaps cost
    train_days: int = 365  # the most history one fold trains on
    min_train_days: int = 180  # the first fold needs at least this much, else: single split
    val_days: int = 14
    warm_start: bool = True
    warm_epochs: int = 5
    warm_patience: int = 2

    @property
    def test_days(self) -> int:
        return self.folds * self.fold_days


def history_days(features: pl.DataFrame) -> float:
    if features.is_empty():
        return 0.0
    first, last = ts_bounds(features)
    return (last - first).total_seconds() / 86400


def required_days(cfg: WalkForwardConfig, window: int = 48, vol_horizon: int = 24) -> float:
    """History the walk-forward needs: the test folds, validation, two embargoes, the first
    window's inputs, the last targets and the first fold's minimum training."""
    overhead_hours = window + 2 * (window + vol_horizon) + vol_horizon
    return cfg.min_train_days + cfg.val_days + cfg.test_days + overhead_hours / HOURS_PER_DAY


def enough_history(features: pl.DataFrame, cfg: WalkForwardConfig) -> bool:
    return cfg.folds > 0 and history_days(features) >= required_days(cfg)


def forecaster_recipes(profile: str | None) -> dict[str, Recipe]:
    """The five model kinds and the trained no-attention twins, by name."""
    recipes = {kind: recipe_for(kind, profile) for kind in model_kinds()}
    recipes.update({name: control_recipe(name, profile) for name in control_kinds()})
    return recipes


def _same_recipe(a: Recipe, b: Recipe) -> bool:
    return (a.arch, a.kwargs, a.heads, a.features, a.train) == (b.arch, b.kwargs, b.heads, b.features, b.train)


def _fit(
    recipe: Recipe, data: WindowData, seed: int, warm: dict | None, cfg: WalkForwardConfig
) -> tuple[nn.Module, int]:
    torch.manual_seed(seed)
    model = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads)).build()
    config = replace(recipe.train, seed=seed, snapshot_every=0)
    if warm is not None:
        model.load_state_dict(warm)
        config = replace(config, epochs=min(cfg.warm_epochs, config.epochs), patience=cfg.warm_patience)
    result = train(model, data, config)
    return result.model, result.epochs_run


def _state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def model_forecasts(data: WindowData, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A model's raw outputs on `data.test` in log-return units: ret, var (predictive), vol_var (24 h),
    next_var (the next hour's variance); prob (n, 3): DOWN / STABLE / UP probabilities of a direction head."""
    scale = data.scaler.target_scale
    out = {"ret": outputs["ret"] * scale}
    if "log_var" in outputs:
        out["var"] = np.exp(outputs["log_var"]) * scale**2
    elif "member_spread" in outputs:
        out["var"] = outputs["member_spread"] ** 2 * scale**2
    if "vol" in outputs:
        out["vol_var"] = (outputs["vol"] * scale) ** 2
    if "vol_next" in outputs:
        out["next_var"] = (outputs["vol_next"] * scale) ** 2
    if "direction_logits" in outputs:
        out["prob"] = softmax(np.asarray(outputs["direction_logits"], dtype=np.float64), axis=-1)
    return out


def recalibrated(
    data: WindowData, val: dict[str, np.ndarray], test: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The volatility model's test forecasts recalibrated in logs (`LogRecalibration`) on the fold's
    validation slice (hours it was not trained on): `vol_var_recalibrated`, `next_var_recalibrated`."""
    scale = data.scaler.target_scale
    realised = {"vol_var": (data.val.vol.astype(np.float64) * scale) ** 2, "next_var": data.val.raw_ret**2}
    out, errors = {}, {}
    for key, target in realised.items():
        if key not in val or key not in test:
            continue
        try:
            out[f"{key}_recalibrated"] = LogRecalibration.fit(val[key], target).apply(test[key])
        except (ValueError, np.linalg.LinAlgError) as exc:
            errors[f"recalibration of {key}"] = str(exc)
    return out, errors


def base_rates(direction: np.ndarray, classes: int = len(DIRECTION_NAMES)) -> np.ndarray:
    """Class frequencies of the training hours: the base-rate forecast of the direction probabilities."""
    counts = np.bincount(np.asarray(direction, dtype=np.int64), minlength=classes).astype(np.float64)
    return counts / counts.sum() if counts.sum() else np.full(classes, 1.0 / classes)


def forecast_set(
    features: pl.DataFrame, data: WindowData, model_outputs: dict[str, dict[str, np.ndarray]], fold: int = 1
) -> tuple[ForecastSet, dict[str, str]]:
    """Every forecaster on `data.test`: the models' outputs, the ridge controls and the volatility
    baselines, all fitted on `data.train` (and `data.val` for the ridge penalty)."""
    frame = features.sort("ts")
    returns = frame["log_return"].to_numpy().astype(np.float64)
    ts = frame["ts"].to_numpy()
    scale = data.scaler.target_scale
    n = len(data.test)
    fs = ForecastSet(
        end_ts=data.test.end_ts,
        fold=np.full(n, fold),
        actual=data.test.raw_ret,
        train_mean=np.full(n, float(np.mean(data.train.raw_ret))),
        realised_var=(data.test.vol.astype(np.float64) * scale) ** 2,
        direction=np.asarray(data.test.direction, dtype=np.int64),
        base_rates=np.tile(base_rates(data.train.direction), (n, 1)),
    )
    for name, out in model_outputs.items():
        if name not in (VOLATILITY_MODEL, VOLATILITY_TWIN):  # the volatility model's return head is not trained
            fs.returns[name] = out["ret"]
        if "var" in out:
            fs.variances[name] = out["var"]
        if (name in VOL_FORECASTERS or name == VOLATILITY_TWIN) and "vol_var" in out:
            fs.vol_var[name] = out["vol_var"]
        if name in (VOLATILITY_MODEL, VOLATILITY_TWIN) and "next_var" in out:
            fs.next_var[name] = out["next_var"]
        if name == VOLATILITY_MODEL and "vol_var_recalibrated" in out:
            fs.vol_var[RECALIBRATED] = out["vol_var_recalibrated"]
        if name == VOLATILITY_MODEL and "next_var_recalibrated" in out:
            fs.next_var[RECALIBRATED] = out["next_var_recalibrated"]
        if "prob" in out:
            fs.probabilities[name] = out["prob"]
    features_seen = list(data.spec.features)
    if "log_return" in features_seen:
        j = features_seen.index("log_return")
        ar = RidgeAR.fit(data.train.x[:, :, j], data.train.ret, data.val.x[:, :, j], data.val.ret)
        fs.returns["ridge_ar48"] = ar.predict(data.test.x[:, :, j]) * scale
    ridge = RidgeAR.fit(data.train.x, data.train.ret, data.val.x, data.val.ret)
    fs.returns["ridge_features"] = ridge.predict(data.test.x) * scale
    origins = np.searchsorted(ts, data.test.end_ts)
    train_lo = int(np.searchsorted(ts, data.train.end_ts.min())) - (data.spec.window - 1)
    train_hi = int(np.searchsorted(ts, data.train.end_ts.max())) + 1
    hours = ts.astype("datetime64[h]").astype(np.int64)  # the seasonal baselines' hour of day
    log_volume = frame["log_volume"].to_numpy().astype(np.float64) if "log_volume" in frame.columns else None
    baselines, errors = volatility_baselines(
        returns, max(train_lo, 1), train_hi, origins, (1, data.spec.vol_horizon), hours, log_volume
    )
    fs.vol_var.update(baselines[data.spec.vol_horizon])
    fs.next_var.update(baselines[1])
    return fs, errors


def _fold_windows(
    features: pl.DataFrame, recipes: dict[str, Recipe], start: int, cfg: WalkForwardConfig
) -> dict[tuple[str, ...], WindowData]:
    datas: dict[tuple[str, ...], WindowData] = {}
    for recipe in recipes.values():
        if recipe.features not in datas:
            datas[recipe.features] = build_fold(
                features,
                recipe.window_spec,
                start,
                cfg.fold_days * HOURS_PER_DAY,
                cfg.val_days * HOURS_PER_DAY,
                cfg.train_days * HOURS_PER_DAY,
            )
    ends = [d.test.end_ts for d in datas.values()]
    if any(not np.array_equal(ends[0], e) for e in ends[1:]):
        raise RuntimeError("models with different features were given different test hours")
    return datas


def walk_forward(
    features: pl.DataFrame,
    profile: str | None = None,
    cfg: WalkForwardConfig = WalkForwardConfig(),
    progress: Progress | None = None,
    recipes: dict[str, Recipe] | None = None,
) -> Evaluation:
    """Retrain every forecaster per fold, forecast each fold's test period, pool, test."""
    say = progress or (lambda _msg: None)
    recipes = recipes or forecaster_recipes(profile)
    base = next(iter(recipes.values())).window_spec
    last_hour = int(ts_bounds(features)[1].timestamp() // 3600) - base.vol_horizon
    fold_hours = cfg.fold_days * HOURS_PER_DAY
    warm: dict[str, dict] = {}
    parts, infos, errors = [], [], {}
    for i in range(cfg.folds):
        t0 = time.perf_counter()
        start = last_hour - (cfg.folds - i) * fold_hours
        datas = _fold_windows(features, recipes, start, cfg)
        outputs, epochs = {}, {}
        trained: dict[str, nn.Module] = {}
        for name, recipe in recipes.items():
            data = datas[recipe.features]
            members, first, models = recipe.members, 0, []
            if members > 1 and "attention_lstm" in recipes and _same_recipe(recipe, recipes["attention_lstm"]):
                models.append(trained["attention_lstm"])  # member 0 has the attention_lstm seed
                first = 1
            for m in range(first, members):
                key = name if members == 1 else f"{name}/m{m}"
                seed = recipe.train.seed + 1000 * m
                t1 = time.perf_counter()
                model, n_epochs = _fit(recipe, data, seed, warm.get(key) if cfg.warm_start else None, cfg)
                warm[key] = _state(model)
                epochs[key] = n_epochs
                models.append(model)
                took = time.perf_counter() - t1
                say(FoldProgress(i + 1, cfg.folds, f"{key} trained, {n_epochs} epochs, {took:.0f} s").format())
            if members == 1:
                trained[name] = models[0]
                outputs[name] = model_forecasts(data, predict(models[0], data.test.x))
                if name == VOLATILITY_MODEL:
                    val = model_forecasts(data, predict(models[0], data.val.x)) if len(data.val) else {}
                    recal, err = recalibrated(data, val, outputs[name])
                    outputs[name].update(recal)
                    errors.update({f"fold {i + 1} {k}": v for k, v in err.items()})
            else:
                rets = np.stack([predict(m_, data.test.x)["ret"] for m_ in models])
                outputs[name] = model_forecasts(data, {"ret": rets.mean(0), "member_spread": rets.std(0)})
        data = datas[base.features]
        fs, errs = forecast_set(features, data, outputs, fold=i + 1)
        errors.update({f"fold {i + 1} {k}": v for k, v in errs.items()})
        parts.append(fs)
        infos.append(FoldSpan.of(data, fold=i + 1, seconds=time.perf_counter() - t0, epochs=epochs))
        detail = f"{len(data.test)} test hours from {infos[-1].test_start}"
        say(FoldProgress(i + 1, cfg.folds, detail, done_s=time.perf_counter() - t0).format())
    pooled = ForecastSet.concat(parts)
    note = (
        f"walk-forward: {cfg.folds} folds of {cfg.fold_days} days, {len(pooled):,} pooled test hours; every "
        f"model and control retrained per fold on up to {cfg.train_days} days before it"
        + (f" (warm-started from the previous fold, at most {cfg.warm_epochs} epochs)" if cfg.warm_start else "")
    )
    return evaluate_forecasts(
        pooled, "walk_forward", note, infos, {"walk_forward": asdict(cfg), "profile": profile}, errors
    )
