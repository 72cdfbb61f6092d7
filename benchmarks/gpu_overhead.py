"""Where does train() lose time against a bare loop on a GPU? Reference LSTM, full
profile batch size; train() with mixed precision and gradient clipping on or off.

    python -m benchmarks.gpu_overhead [--epochs 5]
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks.training import bare_loop  # noqa: E402
from workflows.data.features import compute_features  # noqa: E402
from workflows.data.sources.synthetic import SyntheticSpec, generate_candles  # noqa: E402
from workflows.ml.models import ReferenceAttentionLSTM  # noqa: E402
from workflows.ml.profiles import recipe_for  # noqa: E402
from workflows.ml.training import select_device, train  # noqa: E402
from workflows.ml.windows import build_windows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    device = str(select_device("auto"))
    recipe = recipe_for("reference_lstm", "full")
    data = build_windows(compute_features(generate_candles(SyntheticSpec(days=365, seed=1))), recipe.window_spec)
    x, y, bs, lr = data.train.x, data.train.ret, recipe.train.batch_size, recipe.train.lr
    bare_loop(ReferenceAttentionLSTM(3, 128), x, y, 1, bs, lr, device)  # warm-up
    print("| variant | samples/s |\n| --- | ---: |")
    print(f"| bare loop | {bare_loop(ReferenceAttentionLSTM(3, 128), x, y, args.epochs, bs, lr, device):,.0f} |")
    for amp in (True, False):
        for clip in (1.0, 0.0):
            cfg = replace(recipe.train, epochs=args.epochs, patience=0, amp=amp, grad_clip=clip, snapshot_every=0)
            result = train(ReferenceAttentionLSTM(3, 128), data, cfg)
            print(f"| train(amp={amp}, grad_clip={clip}) | {result.samples_per_s:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
