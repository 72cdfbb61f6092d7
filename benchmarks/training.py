"""Training throughput: the project's `train()` against a bare PyTorch loop of the
same model and batch size, and the end-to-end `make demo` wall time and memory.

    .venv/bin/python -m benchmarks.training [--repeats 3] [--epochs 5] [--skip-demo]

Writes a section of docs/benchmarks.md. All figures are medians of `--repeats`
runs on this machine; the ratio (ours / bare) is what carries to other machines.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks.common import machine, write_section  # noqa: E402
from workflows.data.features import compute_features  # noqa: E402
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles  # noqa: E402
from workflows.ml.models import ArchConfig, count_parameters  # noqa: E402
from workflows.ml.profiles import recipe_for  # noqa: E402
from workflows.ml.training import train  # noqa: E402
from workflows.ml.windows import build_windows  # noqa: E402


def bare_loop(model, x, y, epochs: int, batch_size: int, lr: float, device: str) -> float:
    """The plainest correct loop: shuffle, forward, MSE, backward, Adam step. Returns samples/s."""
    dev = torch.device(device)
    model.to(dev).train()
    x, y = torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, device=dev)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.mse_loss(model(x[idx]).ret, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return n * epochs / (time.perf_counter() - t0)


def recipe_and_data(kind: str, days: int = 90):
    feats = compute_features(generate_candles(SyntheticSpec(days=days)))
    recipe = recipe_for(kind, "cpu")
    return recipe, build_windows(feats, recipe.window_spec, data_version="bench")


def compare(recipe, data, epochs: int, repeats: int, device: str) -> dict:
    cfg = replace(recipe.train, epochs=epochs, patience=0, device=device)
    arch = ArchConfig(recipe.arch, len(recipe.features), dict(recipe.kwargs), dict(recipe.heads))
    bare, ours_train, ours_wall = [], [], []

    def run_bare(seed):
        torch.manual_seed(seed)
        bare.append(bare_loop(arch.build(), data.train.x, data.train.ret, epochs, cfg.batch_size, cfg.lr, device))

    def run_ours(seed):
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        result = train(arch.build(), data, cfg)
        ours_train.append(result.samples_per_s)
        ours_wall.append(len(data.train) * epochs / (time.perf_counter() - t0))

    for r in range(repeats):  # alternate the order so warm-up favours neither
        first, second = (run_bare, run_ours) if r % 2 == 0 else (run_ours, run_bare)
        first(r)
        second(r)
    b, t, w = statistics.median(bare), statistics.median(ours_train), statistics.median(ours_wall)
    return {
        "bare": b,
        "train_phase": t,
        "end_to_end": w,
        "ratio_train": t / b,
        "ratio_end_to_end": w / b,
        "windows": len(data.train),
        "batch_size": cfg.batch_size,
        "epochs": epochs,
        "parameters": count_parameters(arch.build()),
    }


def demo_run(profile: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `workflows demo` in a fresh data folder."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "WORKFLOWS_DATA_DIR": f"{tmp}/data",
            "DAGSTER_HOME": f"{tmp}/home",
            "WORKFLOWS_PROFILE": profile,
        }
        Path(f"{tmp}/home").mkdir()
        t0 = time.perf_counter()
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "workflows"), "demo"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()

    results = {}
    for kind in ("reference_lstm", "attention_lstm", "transformer", "multitask"):
        recipe, data = recipe_and_data(kind)
        results[kind] = compare(recipe, data, args.epochs, args.repeats, "cpu")
        print(kind, results[kind])
    ref = results["reference_lstm"]
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {args.repeats} runs (bare and ours alternate first).",
        "",
        f"`cpu` profile sizes, {ref['windows']:,} training windows (90 synthetic days), batch {ref['batch_size']}, "
        f"{ref['epochs']} epochs, CPU. The bare loop is the plainest correct one (shuffle, forward, MSE on the "
        "return, backward, Adam step) on the same model; `train()` adds gradient clipping (training phase) and "
        "validation, attention snapshots and early-stopping bookkeeping (end to end). For `multitask` the bare "
        "loop trains the return head only, so `train()` does more work there.",
        "",
        "| model | parameters | bare loop samples / s | `train()` training phase | ratio "
        "| `train()` end to end | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, r in results.items():
        lines.append(
            f"| {kind} | {r['parameters']:,} | {r['bare']:,.0f} | {r['train_phase']:,.0f} | "
            f"{r['ratio_train']:.2f} | {r['end_to_end']:,.0f} | {r['ratio_end_to_end']:.2f} |"
        )
    lines += [
        "",
        f"Aim: at least 0.9 of the bare loop for the reference LSTM. Training phase: {ref['ratio_train']:.2f} "
        f"({'met' if ref['ratio_train'] >= 0.9 else 'NOT met'}); end to end: {ref['ratio_end_to_end']:.2f}.",
    ]
    if not args.skip_demo:
        walls, peaks = [], []
        for _ in range(args.repeats):
            wall, peak = demo_run("cpu")
            walls.append(wall)
            peaks.append(peak)
        wall = statistics.median(walls)
        lines += [
            "",
            "`make demo` (`workflows demo`, `cpu` profile: candles, features, all five models, evaluation, "
            "attention analysis, report, promotion gate and forecast on 90 "
            f"synthetic days), fresh data folder: median wall time {wall:.0f} s "
            f"(runs: {', '.join(f'{w:.0f}' for w in walls)} s), peak resident memory {max(peaks):,.0f} MiB. "
            f"Aim: under 4 minutes on 2 cores ({'met' if wall < 240 else 'NOT met'}).",
        ]
    write_section(Path(args.out), "bench_training", "Training throughput (`benchmarks/training.py`)", "\n".join(lines))


if __name__ == "__main__":
    main()
