"""One training loop for every model: assets, benchmarks and tests all call `train`.

* Device: CUDA, then Apple MPS, then CPU (`device="auto"`), or forced.
* Mixed precision (bfloat16 autocast) on CUDA; full precision elsewhere.
* Seeded; deterministic on CPU (same seed, same result, bit for bit).
* Early stopping on the validation loss; the best epoch's weights are returned.
* Progress through `callback(EpochReport)` once per epoch.
* Attention snapshots on a fixed validation batch every `snapshot_every` epochs.
* Resumable: with `resume_path`, the full state (weights, optimiser, RNGs,
  history) is written atomically after every epoch, and a later call with the
  same path continues after the last completed epoch. A resumed training ends
  exactly where an uninterrupted one would.
"""

import copy
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workflows.io import write_with
from workflows.ml.models import ModelOutput
from workflows.ml.windows import Split, WindowData


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5  # epochs without validation improvement before stopping; 0 = never stop early
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    entropy_weight: float = 0.0  # > 0 penalises attention entropy (sharper), < 0 rewards it
    loss_weights: tuple[float, float, float] = (1.0, 0.3, 0.5)  # return, volatility, direction
    vol_loss: str = "qlike"  # the volatility head's loss: "qlike" (on the variance, as it is judged) or "mse"
    # weight of the next-hour volatility head (QLIKE against the squared next return); only models with that head
    vol_next_weight: float = 1.0
    snapshot_every: int = 2
    snapshot_size: int = 64
    grad_clip: float = 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["loss_weights"] = list(self.loss_weights)
        return d


def trains_returns(loss_weights) -> bool:
    """A positive return loss weight: False for a volatility model, whose return head is never trained."""
    return float(loss_weights[0]) > 0


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    seconds: float
    samples_per_s: float
    improved: bool


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    wall_s: float
    samples_per_s: float
    device: str
    stopped_early: bool
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (epoch, (N, T) attention)

    def metrics(self) -> dict:
        return {
            "best_epoch": self.best_epoch,
            "best_val_loss": round(self.best_val_loss, 6),
            "epochs_run": self.epochs_run,
            "wall_s": round(self.wall_s, 2),
            "samples_per_s": round(self.samples_per_s, 1),
            "device": self.device,
            "stopped_early": self.stopped_early,
        }


def select_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _tensors(split: Split, device: torch.device) -> dict[str, torch.Tensor]:
    return {
        "x": torch.as_tensor(split.x, device=device),
        "ret": torch.as_tensor(split.ret, device=device),
        "vol": torch.as_tensor(split.vol, device=device),
        "direction": torch.as_tensor(split.direction, device=device),
    }


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean normalised entropy H / ln T of attention rows (B, ..., T), in [0, 1]."""
    t = weights.shape[-1]
    h = -(weights.clamp_min(1e-12) * weights.clamp_min(1e-12).log()).sum(-1)
    return (h / math.log(t)).mean()


def qlike_loss(vol_pred: torch.Tensor, vol_target: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """Patton's QLIKE on variances, mean of  r/f - ln(r/f) - 1  with f = vol_pred^2, r = vol_target^2.

    Its minimiser is the conditional mean of r, and it is the loss the evaluation
    judges variance forecasts by; an MSE on the volatility (RMS) instead targets
    E[sqrt(r)]^2 < E[r], a forecast biased low."""
    ratio = vol_target.square().clamp_min(floor) / vol_pred.square().clamp_min(floor)
    return (ratio - ratio.log() - 1).mean()


def volatility_loss(vol_pred: torch.Tensor, vol_target: torch.Tensor, kind: str = "qlike") -> torch.Tensor:
    if kind == "qlike":
        return qlike_loss(vol_pred, vol_target)
    if kind == "mse":
        return F.mse_loss(vol_pred, vol_target)
    raise ValueError(f"unknown volatility loss {kind!r}: choose qlike or mse")


def task_loss(
    out: ModelOutput,
    batch: dict[str, torch.Tensor],
    weights: tuple[float, float, float],
    vol_loss: str = "qlike",
    w_vol_next: float = 1.0,
) -> torch.Tensor:
    w_ret, w_vol, w_dir = weights
    ret = out.ret.float()
    if w_ret == 0:  # a volatility model: its return head is not trained
        loss = torch.zeros((), device=ret.device)
    elif out.log_var is not None:
        loss = w_ret * F.gaussian_nll_loss(ret, batch["ret"], out.log_var.float().exp(), eps=1e-6)
    else:
        loss = w_ret * F.mse_loss(ret, batch["ret"])
    if out.vol is not None:
        loss = loss + w_vol * volatility_loss(out.vol.float(), batch["vol"], vol_loss)
    if out.vol_next is not None:  # the next return's size is a one-hour realised volatility
        loss = loss + w_vol_next * volatility_loss(out.vol_next.float(), batch["ret"].abs(), vol_loss)
    if out.direction_logits is not None:
        loss = loss + w_dir * F.cross_entropy(out.direction_logits.float(), batch["direction"])
    return loss


def _attention_for_penalty(out: ModelOutput) -> torch.Tensor:
    if out.attention_maps is not None:
        return out.attention_maps
    if out.scale_attention is not None:
        return out.scale_attention
    return out.attention


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: dict[str, torch.Tensor], config: TrainConfig, device: torch.device) -> float:
    model.eval()
    total, n = 0.0, len(data["ret"])
    for start in range(0, n, 1024):
        batch = {k: v[start : start + 1024] for k, v in data.items()}
        with _autocast(device, config.amp):
            out = model(batch["x"])
        total += float(task_loss(out, batch, config.loss_weights, config.vol_loss, config.vol_next_weight)) * len(
            batch["ret"]
        )
    return total / max(n, 1)


def _save_atomic(obj, path: Path) -> None:
    write_with(path, lambda tmp: torch.save(obj, tmp))


RESUME_KEYS = ("model", "optimizer", "torch_rng", "generator", "epoch", "history", "best_val", "best_epoch")


def _resume_state(path: Path, device: torch.device) -> dict | None:
    """The state a crashed training left (None: none). One that cannot be read (truncated, another format) is
    a cache, not evidence: say so and start from the first epoch (the file is rewritten after it)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        missing = [k for k in RESUME_KEYS if k not in state]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
        return state
    except Exception as exc:  # RuntimeError (truncated zip), UnpicklingError, KeyError, ...
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        warnings.warn(
            f"{path}: the training's resume state cannot be read ({type(exc).__name__}: {detail}); "
            "training starts from its first epoch (the file is rewritten after it)",
            stacklevel=3,
        )
        return None


def train(
    model: nn.Module,
    data: WindowData,
    config: TrainConfig = TrainConfig(),
    callback: Callable[[EpochReport], None] | None = None,
    resume_path: str | os.PathLike | None = None,
) -> TrainResult:
    """Train `model` on `data.train`, early-stopping on `data.val`."""
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    train_t = _tensors(data.train, device)
    val_t = _tensors(data.val, device)
    snap_x = val_t["x"][: config.snapshot_size]

    start_epoch, history, snapshots = 0, [], []
    best_val, best_epoch, bad_epochs, elapsed = math.inf, 0, 0, 0.0
    best_state = copy.deepcopy(model.state_dict())
    resume = Path(resume_path) if resume_path else None
    state = _resume_state(resume, device) if resume is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["generator"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        best_val, best_epoch, bad_epochs = float(state["best_val"]), int(state["best_epoch"]), int(state["bad_epochs"])
        best_state = state["best_state"]
        snapshots = [(int(e), a.numpy()) for e, a in state["snapshots"]]
        elapsed = float(state["elapsed"])

    n = len(train_t["ret"])
    train_seconds = sum(h["train_seconds"] for h in history)
    stopped_early = False
    epoch = start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if config.patience and bad_epochs >= config.patience:
            stopped_early = True
            epoch -= 1
            break
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        running = torch.zeros((), device=device)  # summed on the device: no sync per batch
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            batch = {k: v[idx] for k, v in train_t.items()}
            with _autocast(device, config.amp):
                out = model(batch["x"])
            loss = task_loss(out, batch, config.loss_weights, config.vol_loss, config.vol_next_weight)
            if config.entropy_weight:
                loss = loss + config.entropy_weight * attention_entropy(_attention_for_penalty(out).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            running += loss.detach() * len(idx)
        running = float(running)  # one device sync per epoch
        t_train = time.perf_counter() - t0
        train_seconds += t_train
        val_loss = evaluate_loss(model, val_t, config, device)
        improved = val_loss < best_val - 1e-9
        if improved:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        if config.snapshot_every and (epoch % config.snapshot_every == 0 or epoch == 1):
            model.eval()
            with torch.no_grad():
                snapshots.append((epoch, model(snap_x).attention.float().cpu().numpy()))
        seconds = time.perf_counter() - t0
        elapsed += seconds
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / n,
                "val_loss": val_loss,
                "seconds": seconds,
                "train_seconds": t_train,
            }
        )
        if resume is not None:
            _save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "generator": generator.get_state(),
                    "epoch": epoch,
                    "history": history,
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "best_state": best_state,
                    "snapshots": [(e, torch.from_numpy(a)) for e, a in snapshots],
                    "elapsed": elapsed,
                },
                resume,
            )
        if callback is not None:
            callback(EpochReport(epoch, config.epochs, running / n, val_loss, best_val, seconds, n / t_train, improved))

    model.load_state_dict(best_state)
    model.eval()
    epochs_run = len(history)
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        epochs_run=epochs_run,
        wall_s=elapsed,
        samples_per_s=(n * epochs_run / train_seconds) if train_seconds else 0.0,
        device=str(device),
        stopped_early=stopped_early or (epochs_run < config.epochs),
        snapshots=snapshots,
    )


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1024, device: str = "cpu") -> dict[str, np.ndarray]:
    """Run `model` over windows `x` (N, T, F); numpy arrays of every output it gives."""
    dev = torch.device(device)
    model.to(dev).eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch_size):
        out = model(torch.as_tensor(x[start : start + batch_size], device=dev))
        for name in ModelOutput.__dataclass_fields__:
            value = getattr(out, name)
            if value is not None:
                parts.setdefault(name, []).append(value.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}
