"""Does a warm start's training improve on where it started? (issue 31: a first measurement, validation hours only)

For every period model of a symbol that was warm-started, the validation loss of the weights it started from
(the previous month's model, read through this month's scaler and windows: what the training saw before its
first epoch) against the validation loss of the weights the training kept (its best epoch). The training keeps
its best epoch but never compares it with its start, so where the start was better, the month's model is worse
on its own validation hours than the model it was warm-started from. Reads the registry and the checkpoints of a
data folder after `workflows run` (no training; a forward pass per model and month).

    WORKFLOWS_DATA_DIR=... .venv/bin/python -m benchmarks.warm_start_check BTCUSDT
"""

import argparse
import itertools
import json
import math
import statistics

import duckdb
import torch

from workflows.data.warehouse import load_features
from workflows.ml.period_models import registered, registered_config
from workflows.ml.periods import PeriodConfig
from workflows.ml.predictions import period_window_data
from workflows.ml.training import TrainConfig, _tensors, evaluate_loss
from workflows.settings import DataPaths

KINDS = ("volatility", "no_attention_volatility", "attention_lstm", "no_attention_lstm", "multitask")


def train_config(stored: dict) -> TrainConfig:
    known = {k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__}
    known["loss_weights"] = tuple(known.get("loss_weights", TrainConfig.loss_weights))
    return TrainConfig(**known)


def check(con, features, symbol: str, kind: str, periods: list[str]) -> list[dict]:
    rows = []
    for prev_key, key in itertools.pairwise(periods):
        model, prev = registered(con, symbol, key, kind), registered(con, symbol, prev_key, kind)
        cfg = registered_config(con, symbol, key, kind) or PeriodConfig()
        if model is None or prev is None or model.warm_from != prev.sha256:
            continue
        ckpt, start = model.load(), prev.load()
        data = period_window_data(ckpt, features, key, cfg)
        config = train_config(ckpt.train_config)
        val = _tensors(data.val, torch.device("cpu"))
        with torch.no_grad():
            start_loss = evaluate_loss(start.model, val, config, torch.device("cpu"))
            kept_loss = evaluate_loss(ckpt.model, val, config, torch.device("cpu"))
        history = ckpt.training.history
        rows.append(
            {
                "kind": kind,
                "period": key[:7],
                "val_windows": len(data.val),
                "start": start_loss,
                "kept": kept_loss,
                "first_epoch": history[0].val_loss if history else math.nan,
                "best_epoch": ckpt.training.best_epoch,
                "epochs_run": ckpt.training.epochs_run,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Warm starts against where they started (validation hours)")
    parser.add_argument("symbol")
    parser.add_argument("--json", default=None, help="write the rows here as well")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = DataPaths.resolve()
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        features, _ = load_features(con, args.symbol)
        periods = sorted(
            r[0]
            for r in con.execute("SELECT DISTINCT period FROM period_models WHERE symbol = ?", [args.symbol]).fetchall()
        )
        rows = [r for kind in KINDS for r in check(con, features, args.symbol, kind, periods)]
    print(
        "| model | month | validation windows | loss at the start (previous month's weights) | first epoch | "
        "kept (best epoch) | best epoch / run | kept - start |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['kind']} | {r['period']} | {r['val_windows']} | {r['start']:.4f} | {r['first_epoch']:.4f} | "
            f"{r['kept']:.4f} | {r['best_epoch']} / {r['epochs_run']} | {r['kept'] - r['start']:+.4f} |"
        )
    print()
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        worse = [r for r in mine if r["kept"] > r["start"]]
        change = statistics.median(r["kept"] - r["start"] for r in mine)
        print(
            f"{kind}: the kept weights are worse on the month's validation hours than the start in {len(worse)} of "
            f"{len(mine)} warm-started months (median change {change:+.4f}; the loss is the training's own, a Gaussian "
            "negative log-likelihood for the multi-task model, so only differences compare)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
