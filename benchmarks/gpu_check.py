"""One prepared GPU check: the `full` profile for a few epochs on CUDA, then the
checkpoint reloaded on the CPU and compared; samples/s against a bare loop.

    python -m benchmarks.gpu_check [--epochs 3] [--days 365] [--out DIR]

Prints a Markdown table and writes gpu_check.json to --out (default: $OUT or .).
"""

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from workflows.data.features import compute_features  # noqa: E402
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles  # noqa: E402
from workflows.ml.checkpoints import load_checkpoint  # noqa: E402
from workflows.ml.models import REFERENCE_TRANSFORMER_PARAMS  # noqa: E402
from workflows.ml.pipeline import fit  # noqa: E402
from workflows.ml.profiles import recipe_for  # noqa: E402
from workflows.ml.training import predict, select_device  # noqa: E402
from workflows.ml.windows import build_windows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--kinds", default="reference_lstm,attention_lstm,transformer,multitask")
    args = parser.parse_args()
    device = select_device("auto")
    info = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    print(info, flush=True)
    feats = compute_features(generate_candles(SyntheticSpec(days=args.days, seed=1)))
    out_dir = Path(args.out)
    from benchmarks.training import bare_loop
    from workflows.ml.models import ReferenceAttentionLSTM

    ref = recipe_for("reference_lstm", "full")
    ref_data = build_windows(feats, ref.window_spec, data_version="gpu-check")
    # Warm-up (cuDNN/cuBLAS initialisation) so that no measured run pays for it.
    bare_loop(
        ReferenceAttentionLSTM(3, 128),
        ref_data.train.x,
        ref_data.train.ret,
        1,
        ref.train.batch_size,
        ref.train.lr,
        str(device),
    )
    rows = []
    for kind in args.kinds.split(","):
        recipe = recipe_for(kind, "full")
        recipe = replace(recipe, train=replace(recipe.train, epochs=args.epochs, patience=0))
        data = build_windows(feats, recipe.window_spec, data_version="gpu-check")
        t0 = time.perf_counter()
        result = fit(recipe, data, Path("/tmp/gpu_check_ckpt"), kind)
        wall = time.perf_counter() - t0
        gpu_pred = predict(result.model, data.test.x, device=str(device))["ret"]
        ckpt = load_checkpoint(result.checkpoint, result.sha256)  # map_location="cpu", weights_only=True
        cpu_pred = predict(ckpt.model, data.test.x, device="cpu")["ret"]
        diff = float(np.max(np.abs(gpu_pred - cpu_pred)))
        row = {
            "kind": kind,
            "device": result.metrics.device,
            "parameters": result.metrics.parameters,
            "train_windows": len(data.train),
            "batch_size": recipe.train.batch_size,
            "epochs": args.epochs,
            "samples_per_s": round(result.metrics.samples_per_s or 0.0, 1),  # every fit records it
            "wall_s": round(wall, 2),
            "cpu_reload_max_abs_diff": diff,
            "reload_ok": bool(diff < 1e-3),
        }
        rows.append(row)
        print(row, flush=True)
    # Bare loop of the reference LSTM at the same batch size, for the ratio.
    bare = bare_loop(
        ReferenceAttentionLSTM(3, 128),
        ref_data.train.x,
        ref_data.train.ret,
        args.epochs,
        ref.train.batch_size,
        ref.train.lr,
        str(device),
    )
    info["bare_reference_samples_per_s"] = round(bare, 1)
    info["transformer_reference_params"] = REFERENCE_TRANSFORMER_PARAMS
    info["rows"] = rows
    (out_dir / "gpu_check.json").write_text(json.dumps(info, indent=2))
    print("| model | device | parameters | samples/s | wall s | CPU reload max abs diff |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['kind']} | {r['device']} | {r['parameters']:,} | {r['samples_per_s']:,.0f} | {r['wall_s']} | "
            f"{r['cpu_reload_max_abs_diff']:.2e} |"
        )
    print(f"bare reference loop: {bare:,.0f} samples/s")


if __name__ == "__main__":
    main()
