"""What one fitting of a model recorded: the typed form of a checkpoint's `metrics`.

A checkpoint stores these figures as a flat JSON-like dict (`TrainingSummary.to_dict`),
which the UI shows as metadata and the promotion gate reads (`last_target_ts`); the
report and the assets read them through `TrainingSummary.from_dict`, by attribute.
Checkpoints written before a field existed load with that field's default (None:
not recorded).
"""

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class EpochLoss:
    """One epoch of the first member's training."""

    epoch: int
    train_loss: float
    val_loss: float
    seconds: float = 0.0  # the whole epoch, validation and snapshots included
    train_seconds: float = 0.0  # the optimisation steps alone

    @classmethod
    def from_dict(cls, epoch: dict[str, Any]) -> "EpochLoss":
        """One entry of the training loop's history (or of a stored checkpoint's): extra keys ignored."""
        return cls(
            epoch=int(epoch["epoch"]),
            train_loss=float(epoch["train_loss"]),
            val_loss=float(epoch["val_loss"]),
            seconds=float(epoch.get("seconds", 0.0)),
            train_seconds=float(epoch.get("train_seconds", 0.0)),
        )


@dataclass(frozen=True)
class TrainingSummary:
    kind: str  # the model asset's kind: "attention_lstm", "ensemble", ...
    architecture: str  # the registry name of the architecture
    parameters: int
    members: int  # 1, or an ensemble's members
    epochs_run: int  # summed over members
    best_epoch: int  # of the first member
    best_val_loss: float  # mean over members
    device: str
    # the windows (`WindowData.summary`)
    train_windows: int
    val_windows: int
    test_windows: int
    window: int  # input hours per window
    features: str  # the input features, comma separated
    embargo_hours: int
    history: tuple[EpochLoss, ...] = ()
    stopped_early: bool | None = None  # any member stopped before its last epoch (None: not recorded)
    # validation figures: a return model records the first two, a volatility model the last two
    val_mse_scaled: float | None = None
    val_skill_vs_zero: float | None = None
    val_qlike_24h: float | None = None
    val_skill_vs_constant: float | None = None
    # the hours fitting saw (`windows.training_window`, UTC ISO 8601)
    train_end_ts: str | None = None
    val_end_ts: str | None = None
    target_horizon_hours: int | None = None
    last_target_ts: str | None = None
    reference_parameters: int | None = None  # the Transformer: the original study's parameter count
    # clock readings (kept beside the checkpoint, not in its hashed bytes; None: not recorded)
    wall_s: float | None = None  # summed over members
    samples_per_s: float | None = None  # mean over members

    def to_dict(self) -> dict[str, Any]:
        """The flat form a checkpoint stores (lists, not tuples)."""
        out = asdict(self)
        out["history"] = [asdict(h) for h in self.history]
        return out

    @classmethod
    def from_dict(cls, metrics: dict[str, Any]) -> "TrainingSummary":
        """A checkpoint's `metrics`; unknown keys are ignored, a missing required one names itself."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in metrics.items() if k in names}
        values["history"] = tuple(EpochLoss.from_dict(h) for h in metrics.get("history", []))
        missing = [f.name for f in fields(cls) if f.name not in values and f.default is MISSING]
        if missing:
            raise ValueError(f"checkpoint metrics lack {', '.join(missing)} (keys present: {', '.join(metrics)})")
        return cls(**values)
