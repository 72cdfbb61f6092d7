"""Model checkpoints: weights plus everything needed to use them, written atomically.

A checkpoint holds the `state_dict` (on CPU, so a GPU-trained model loads on a
machine without one), the architecture config, the scaler, the feature list and
window spec, the data version of the training slice, metrics, the device, and the
attention snapshots taken during training. It is written to a
temporary file and renamed into place, so a reader never sees half a file; it is
loaded with `torch.load(weights_only=True)`, so loading never runs pickled code.

Checkpoints are immutable. A file's name ends in the first hex digits of its own
sha256 (`<kind>-<data version>-<recipe>-<sha256[:16]>.pt`), so a new training never
writes over a file that a production pointer or a materialisation names: different
bytes get a different name, and identical bytes are the same file (kept as it is).

The hashed bytes hold only what was trained: the clock readings of a training (`wall_s`,
`samples_per_s`, each epoch's `seconds` and `train_seconds`) go to a sidecar,
`<checkpoint>.timings.json`, which `load_checkpoint` merges back into `metrics`. So a
rebuild of a lost checkpoint (the same data, recipe and seed) recreates the same file
under the same name and sha256, and a production pointer to it serves again.
"""

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workflows.io import StoredFileError, reading_stored, sha256_file, write_bytes_atomic, write_json_atomic
from workflows.ml.models import ArchConfig, Ensemble
from workflows.ml.training import trains_returns
from workflows.ml.training_summary import TrainingSummary
from workflows.ml.windows import Scaler

FORMAT_VERSION = 1
NAME_DIGITS = 16  # hex digits of the content's sha256 in a checkpoint's file name
TIMING_KEYS = ("wall_s", "samples_per_s")  # clock readings of a training: kept out of the hashed bytes
EPOCH_TIMING_KEYS = ("seconds", "train_seconds")  # the same, per entry of `metrics["history"]`
TIMINGS_SUFFIX = ".timings.json"


@dataclass
class Checkpoint:
    model: nn.Module
    arch: ArchConfig | list[ArchConfig]
    scaler: Scaler
    window_spec: dict
    data_version: str
    metrics: dict  # as stored; `training` reads it typed
    train_config: dict
    snapshots: list[tuple[int, np.ndarray]]
    path: Path
    sha256: str

    @property
    def training(self) -> TrainingSummary:
        """The recorded training figures, typed."""
        return TrainingSummary.from_dict(self.metrics)

    @property
    def forecasts_returns(self) -> bool:
        """False for a volatility model (its return loss weight is 0: the return head is untrained)."""
        return trains_returns(self.train_config.get("loss_weights", [1.0]))


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def timings_path(path: str | os.PathLike) -> Path:
    """Where the clock readings of the checkpoint at `path` are kept (beside it, not hashed)."""
    path = Path(path)
    return path.with_name(path.name + TIMINGS_SUFFIX)


def split_timings(metrics: dict) -> tuple[dict, dict]:
    """(`metrics` without its clock readings, the clock readings): what the file holds and what the sidecar holds."""
    untimed = {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
    timings: dict = {k: metrics[k] for k in TIMING_KEYS if k in metrics}
    history = metrics.get("history")
    if isinstance(history, list):
        untimed["history"] = [{k: v for k, v in h.items() if k not in EPOCH_TIMING_KEYS} for h in history]
        timings["history"] = [{k: h[k] for k in EPOCH_TIMING_KEYS if k in h} for h in history]
    return untimed, timings


def _with_timings(path: Path, metrics: dict) -> dict:
    """`metrics` with the sidecar's clock readings merged back; without a readable sidecar, as stored."""
    try:
        timings = json.loads(timings_path(path).read_text())
    except (OSError, ValueError):
        return metrics  # timings are not evidence: a lost or damaged sidecar leaves them unrecorded
    if not isinstance(timings, dict):
        return metrics
    out = metrics | {k: timings[k] for k in TIMING_KEYS if k in timings}
    history = metrics.get("history")
    if (
        isinstance(history, list)
        and isinstance(timings.get("history"), list)
        and len(timings["history"]) == len(history)
    ):
        out["history"] = [h | t for h, t in zip(history, timings["history"])]
    return out


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    arch: ArchConfig | list[ArchConfig],
    scaler: Scaler,
    window_spec: dict,
    data_version: str,
    metrics: dict,
    train_config: dict,
    snapshots: Sequence[tuple[int, np.ndarray]] = (),
) -> tuple[Path, str]:
    """Write the checkpoint under a content-addressed name; returns (path written, sha256).

    `path` names the family: the file written is `path` with `-<sha256[:16]>` before its
    suffix, in the same folder, published atomically (temp file + rename). If that file
    exists it holds these very bytes and is left untouched. The clock readings in `metrics` are
    written to the sidecar (`timings_path`), not into the hashed bytes."""
    path = Path(path)
    metrics, timings = split_timings(metrics)
    payload = {
        "format_version": FORMAT_VERSION,
        "state_dict": _cpu_state(model),
        "arch": [a.to_dict() for a in arch] if isinstance(arch, list) else arch.to_dict(),
        "scaler": scaler.to_dict(),
        "window_spec": window_spec,
        "data_version": data_version,
        "metrics": metrics,
        "train_config": train_config,
        "snapshots": [(int(e), torch.as_tensor(a)) for e, a in snapshots],
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # in memory: the archive's inner names do not depend on a file name
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    target = content_addressed(path, digest)
    if not (target.exists() and sha256_file(target) == digest):
        write_bytes_atomic(target, data)
    if timings:
        write_json_atomic(timings_path(target), timings)
    return target, digest


def content_addressed(path: str | os.PathLike, sha256: str) -> Path:
    """`dir/name.pt` -> `dir/name-<sha256[:16]>.pt`: where `save_checkpoint` puts content with this hash."""
    path = Path(path)
    return path.with_name(f"{path.stem}-{sha256[:NAME_DIGITS]}{path.suffix}")


def rebuild_hint(path: Path) -> str:
    """What to do about a checkpoint that cannot be used (it lies in `checkpoints/<symbol>/`)."""
    return (
        f"delete it and rebuild it: `workflows run --symbol {path.parent.name}` retrains what is missing (the same "
        "data and code give the same bytes, so a pointer or registry entry naming it serves again)"
    )


def load_checkpoint(path: str | os.PathLike, expected_sha256: str | None = None) -> Checkpoint:
    """Load on CPU with `weights_only=True`; refuse a file whose hash does not match."""
    path = Path(path)
    digest = sha256_file(path)
    remedy = rebuild_hint(path)
    if expected_sha256 and digest != expected_sha256:
        raise StoredFileError(
            path,
            "the checkpoint",
            f"sha256 {digest[:12]} does not match the expected {expected_sha256[:12]}: changed or truncated",
            remedy,
        )
    with reading_stored(path, "the checkpoint", remedy):
        payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        version = payload.get("format_version") if isinstance(payload, dict) else None
        raise StoredFileError(path, "the checkpoint", f"unknown checkpoint format {version}", remedy)
    arch_raw = payload["arch"]
    if isinstance(arch_raw, list):
        arch: ArchConfig | list[ArchConfig] = [ArchConfig.from_dict(a) for a in arch_raw]
        model: nn.Module = Ensemble([a.build() for a in arch])
    else:
        arch = ArchConfig.from_dict(arch_raw)
        model = arch.build()
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Checkpoint(
        model=model,
        arch=arch,
        scaler=Scaler.from_dict(payload["scaler"]),
        window_spec=payload["window_spec"],
        data_version=payload["data_version"],
        metrics=_with_timings(path, payload["metrics"]),
        train_config=payload["train_config"],
        snapshots=[(int(e), t.numpy()) for e, t in payload["snapshots"]],
        path=path,
        sha256=digest,
    )
