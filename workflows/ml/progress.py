"""Progress lines: one format for those who write them (a training's epochs, through
`context.log`) and the terminal that draws bars from them.

    member 2/5 epoch 3/20: train 0.9 val 0.8 (best 0.8) 100 samples/s
    epoch 3/20: ...
"""

import re
from dataclasses import dataclass

_EPOCH = re.compile(r"^(?:member (\d+)/(\d+) )?epoch (\d+)/(\d+): ?(.*)$", re.S)


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


def parse_progress(message: str) -> EpochProgress | None:
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
    return None
