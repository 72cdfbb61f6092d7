"""Rolling-origin (walk-forward) evaluation: retrain every fold, test on the next.

The last `folds` periods of `fold_days` each are test periods; before each, the
model is retrained from scratch on up to `max_train_days` of history (with a
validation slice and the embargo), exactly as the single split does. The test
forecasts of all folds are pooled, so a long history gives the Diebold-Mariano
test many more hours than one split can.
"""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import polars as pl
import torch

from workflows.evaluation.forecasts import evaluate_returns
from workflows.ml.models import ArchConfig
from workflows.ml.profiles import Recipe
from workflows.ml.training import predict, train
from workflows.ml.windows import build_fold

HOURS_PER_DAY = 24


def history_days(features: pl.DataFrame) -> float:
    if features.is_empty():
        return 0.0
    return (features["ts"].max() - features["ts"].min()).total_seconds() / 86400


def enough_history(features: pl.DataFrame, folds: int, fold_days: int, max_train_days: int) -> bool:
    return folds > 0 and history_days(features) >= max_train_days + folds * fold_days + 14


def walk_forward(
    features: pl.DataFrame,
    recipe: Recipe,
    folds: int = 6,
    fold_days: int = 30,
    max_train_days: int = 365,
    val_days: int = 14,
    progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    spec = recipe.window_spec
    last_hour = int(features["ts"].max().timestamp() // 3600) - spec.vol_horizon
    fold_hours = fold_days * HOURS_PER_DAY
    preds, actuals, train_means, fold_rows = [], [], [], []
    for i in range(folds):
        start = last_hour - (folds - i) * fold_hours
        data = build_fold(features, spec, start, fold_hours, val_days * HOURS_PER_DAY,
                          max_train_days * HOURS_PER_DAY)
        torch.manual_seed(recipe.train.seed + i)
        model = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads)).build()
        result = train(model, data, replace(recipe.train, snapshot_every=0))
        ret = predict(result.model, data.test.x)["ret"] * data.scaler.target_scale
        preds.append(ret)
        actuals.append(data.test.raw_ret)
        train_means.append(float(np.mean(data.train.raw_ret)))
        mse = float(np.mean((ret - data.test.raw_ret) ** 2))
        row = {"fold": i + 1, "test_start": str(data.test.end_ts.min())[:16], "test_hours": len(data.test),
               "train_windows": len(data.train), "skill_vs_zero": 1 - mse / float(np.mean(data.test.raw_ret**2)),
               "epochs": result.epochs_run}
        fold_rows.append(row)
        if progress:
            progress(i + 1, folds, row)
    pooled = evaluate_returns(np.concatenate(preds), np.concatenate(actuals), float(np.mean(train_means)))
    return {"folds": fold_rows, "pooled": pooled, "fold_days": fold_days, "max_train_days": max_train_days}
