"""Progress lines: one format for those who write them (the model assets' epochs, the
walk-forward's folds, through `context.log`) and the terminal that draws bars from them.

    member 2/5 epoch 3/20: train 0.9 val 0.8 (best 0.8) 100 samples/s
    epoch 3/20: ...
    fold 1/4: attention_lstm trained, 5 epochs, 12 s
    fold 1/4 done in 100 s: 2400 test hours from 2021-01-01 00:00:00
"""

import re
from dataclasses import dataclass

_EPOCH = re.compile(r"^(?:member (\d+)/(\d+) )?epoch (\d+)/(\d+): ?(.*)$", re.S)
_FOLD = re.compile(r"^fold (\d+)/(\d+)( done in (\d+) s)?: ?(.*)$", re.S)


@dataclass(frozen=True)
class EpochProgress:
    epoch: int
    epochs: int
    detail: str = ""
    member: int | None = None  # 1-based, for an ensemble's members
    members: int | None = None

    def format(self) -> str:
        prefix = f"member {self.member}/{self.members} " if self.member is not None else ""
        return f"{prefix}epoch {self.epoch}/{self.epochs}: {self.detail}"

    @classmethod
    def of_report(cls, report, member: int = 0, members: int = 1) -> "EpochProgress":
        """From the training loop's `EpochReport` (member 0-based, as `fit`'s callback gives it)."""
        detail = (
            f"train {report.train_loss:.4f} val {report.val_loss:.4f} (best {report.best_val_loss:.4f}) "
            f"{report.samples_per_s:.0f} samples/s"
        )
        if members > 1:
            return cls(report.epoch, report.epochs, detail, member + 1, members)
        return cls(report.epoch, report.epochs, detail)


@dataclass(frozen=True)
class FoldProgress:
    fold: int  # 1-based
    folds: int
    detail: str = ""
    done_s: float | None = None  # set on the line that closes the fold

    @property
    def done(self) -> bool:
        return self.done_s is not None

    def format(self) -> str:
        done = f" done in {self.done_s:.0f} s" if self.done_s is not None else ""
        return f"fold {self.fold}/{self.folds}{done}: {self.detail}"


def parse_progress(message: str) -> EpochProgress | FoldProgress | None:
    """The progress a log line reports, or None for any other line."""
    if m := _EPOCH.match(message):
        member, members, epoch, epochs, detail = m.groups()
        return EpochProgress(
            int(epoch),
            int(epochs),
            detail,
            int(member) if member else None,
            int(members) if members else None,
        )
    if m := _FOLD.match(message):
        fold, folds, done, seconds, detail = m.groups()
        return FoldProgress(int(fold), int(folds), detail, float(seconds) if done else None)
    return None
