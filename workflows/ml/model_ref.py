"""`ModelRef`: which checkpoint a period model asset hands downstream, typed, stored as a JSON record.

A `<kind>_period_model` or `<kind>_model` asset returns one; the forecasts, the analysis, the attention
evidence and the promotion gate load the checkpoint it names (its sha256 checked) with the period
settings it was trained with. It is stored through `workflows.records` (`to_json` / `from_json`): a field
added later with a default reads old records, and the plain-dict references written before this type
(the same keys, `period_config` a dict) read as one.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.io import StoredFileError
from workflows.ml.checkpoints import Checkpoint, load_checkpoint
from workflows.ml.periods import ForecastPeriod, PeriodConfig
from workflows.ml.profiles import Profile
from workflows.records import RecordError, from_record, to_record

# The keys that mark a stored plain-JSON value as a model reference (the dicts written before `ModelRef`).
REF_KEYS = ("path", "sha256", "kind", "period")


@dataclass(frozen=True)
class ModelRef:
    """A registered period model: its checkpoint file and hash, kind, training profile, period (the partition
    key, `YYYY-MM-01`) and the period settings it was trained with."""

    path: str
    sha256: str
    kind: str
    profile: Profile | None  # None: registered before profiles were recorded
    period: str
    period_config: PeriodConfig
    train_key: str = ""

    @property
    def month(self) -> str:
        """`YYYY-MM`, as the report and the UI name the period."""
        return self.period[:7]

    @property
    def forecast_period(self) -> ForecastPeriod:
        return ForecastPeriod.from_key(self.period)

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    def load(self) -> Checkpoint:
        """The checkpoint, its sha256 checked."""
        return load_checkpoint(self.path, self.sha256)

    def to_json(self) -> dict[str, Any]:
        return to_record(self, "ModelRef")

    @classmethod
    def from_json(cls, value: Any, where: str | Path, remedy: str) -> "ModelRef":
        """A stored reference (this type's record, or the plain dict written before it); a value that is not
        one raises `StoredFileError` naming `where` (the stored file), what is wrong and the `remedy`."""
        try:
            return from_record(value, cls, "ModelRef")
        except (RecordError, TypeError, ValueError) as exc:
            raise StoredFileError(where, "a model reference", str(exc), remedy) from exc


def looks_like_ref(value: Any) -> bool:
    """Whether a stored plain-JSON value is a model reference written before `ModelRef` was a stored type."""
    return isinstance(value, dict) and all(k in value for k in REF_KEYS)
