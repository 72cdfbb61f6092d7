"""The gate at every month's close, and the history of its looks.

The daily gate judges the newest forecast period's candidate on every hour it has forecast out of
sample so far. When a month's candidate is superseded before the gate has judged it on its whole
month (a backfill of several months in one run, or days on which the schedule did not run), the gate
judges it here first, oldest month first, on the hours through that month's close only: the decision
its last daily look would have made (the e-process is anytime-valid, so a look at the close sees the
path every earlier look saw). Nothing after the close is offered to it, so a backfilled year yields
the decisions a year of daily runs would have made, in order, each against the model serving then.

Every look, at a month's close or on today's hours, is one line of the symbol's history
(`gate_history.jsonl` beside the pointer, appended, never rewritten), which the record beside the
report shows as one table.
"""

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from workflows.io import StoredFileError
from workflows.ml.checkpoints import Checkpoint, load_checkpoint
from workflows.ml.periods import ForecastPeriod
from workflows.serving.promotion import GateConfig, GateDecision, evidence_ends, gate, promote, read_pointer

HISTORY = "gate_history.jsonl"


@dataclass(frozen=True)
class Candidate:
    """A forecast period's model of the served kind: its period key (`YYYY-MM-01`), checkpoint and hash."""

    period: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Look:
    """One look of the gate: which candidate, on which hours, what it decided and what served afterwards."""

    judged_at: str  # when the look ran (UTC, ISO)
    period: str  # the candidate's forecast period (`YYYY-MM-01`)
    at_close: bool  # judged on the hours through its month's close (else on every hour landed so far)
    candidate: str  # checkpoint file name
    promoted: bool
    decided: bool  # the sequential test ran (its index k is taken)
    reason: str
    hours: int
    comparator: str = ""
    test_index: int | None = None
    e_max: float | None = None
    threshold: float | None = None
    skill_vs_comparator: float | None = None
    first_hour: str | None = None
    last_hour: str | None = None
    serving: str = ""  # the checkpoint file serving after the look ("" for the zero-return forecast)

    @classmethod
    def of(cls, decision: GateDecision, candidate: Candidate, at_close: bool, pointer: dict | None) -> "Look":
        shared = {f.name: getattr(decision, f.name) for f in fields(cls) if hasattr(decision, f.name)}
        return cls(
            **shared
            | {
                "judged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "period": candidate.period,
                "at_close": at_close,
                "candidate": Path(candidate.path).name,
                "decided": decision.decided,
                "test_index": decision.test_index if decision.decided else None,  # only a test that ran takes k
                "serving": Path(pointer["path"]).name if pointer and pointer.get("path") else "",
            }
        )


def read_history(folder: Path) -> list[Look]:
    """The symbol's looks, oldest first. A last line cut short by a crash is dropped (its look runs again); any
    other line that is not a look raises `StoredFileError` naming the file, the line and the remedy."""
    path = folder / HISTORY
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.decode().splitlines()
    known = {f.name for f in fields(Look)}
    looks = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            looks.append(Look(**{k: v for k, v in row.items() if k in known}))
        except (ValueError, TypeError) as exc:
            if number == len(lines) and not raw.endswith(b"\n"):
                break  # a write cut short: that look was not completed
            raise StoredFileError(
                path,
                "the gate's history",
                f"line {number} is not a look ({exc})",
                "delete that line (the history only shows past looks; the pointer and the ledger decide)",
            ) from exc
    return looks


def append_look(folder: Path, look: Look) -> None:
    """One line at the end of the history (the file is never rewritten)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HISTORY
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line a crash cut short: cut it off before appending
                f.seek(0)
                f.seek(f.read().rfind(b"\n") + 1)
                f.truncate()
    with path.open("a") as f:
        f.write(json.dumps(asdict(look)) + "\n")


def closes_due(looks: Sequence[Look], candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates of the months before the newest whose close the gate has not judged, oldest first: every
    one after the newest month already judged at its close."""
    before_newest = sorted(candidates, key=lambda c: c.period)[:-1]
    last = max((look.period for look in looks if look.at_close), default="")
    return [c for c in before_newest if c.period > last]


def through_close(features: pl.DataFrame, period: str) -> pl.DataFrame:
    """The feature rows before the month's close: the last window with an outcome forecasts its last hour."""
    return features.filter(pl.col("ts") < ForecastPeriod.from_key(period).end)


def judge_one(
    candidate: Candidate, folder: Path, rows: pl.DataFrame, rule: GateConfig, at_close: bool
) -> tuple[GateDecision, dict | None, Look]:
    """Judge `candidate` on the evidence among `rows` against what serves now (`promote`: under the symbol's
    lock, the ledger's k, the pointer moved when promoted); returns the decision, the pointer in force afterwards
    (None: nothing serves) and the look."""
    ckpt = load_checkpoint(candidate.path, candidate.sha256)
    ends = evidence_ends(rows)  # every hour since the candidate's last target: its period and all later ones

    def judged(current: Checkpoint | None, k: int) -> GateDecision:
        return gate(ckpt, current, rows, ends, rule, k)

    decision, pointer = promote(folder, candidate.path, candidate.sha256, judged)
    return decision, pointer, Look.of(decision, candidate, at_close, pointer)


def judge(
    candidates: Sequence[Candidate], folder: Path, features: pl.DataFrame, rule: GateConfig | None = None
) -> tuple[GateDecision, dict | None, list[Look]]:
    """The gate's run over the months' candidates (one per forecast period, the newest last). First every month
    before the newest not yet judged at its close, oldest first, on the hours through that close; then the newest
    on every hour landed. Each look is appended to the history, except a look at the serving checkpoint itself
    (no decision); a month whose checkpoint cannot be read is recorded as not judged (the file and the fault
    named) and the others are judged, so one lost file never stops the gate. Returns the newest's decision, the
    pointer in force afterwards and the whole history."""
    rule = rule or GateConfig()
    history = read_history(folder)
    looks = []
    for c in closes_due(history, candidates):
        try:
            looks.append(judge_one(c, folder, through_close(features, c.period), rule, at_close=True)[2])
        except (StoredFileError, FileNotFoundError) as exc:  # a month's checkpoint gone: say so, judge the rest
            unjudged = GateDecision(False, f"not judged at its close: {exc}", 0)
            looks.append(Look.of(unjudged, c, True, read_pointer(folder)))
        append_look(folder, looks[-1])
    newest = max(candidates, key=lambda c: c.period)
    decision, pointer, look = judge_one(newest, folder, features, rule, at_close=False)
    if not decision.self_comparison:
        append_look(folder, look)
        looks.append(look)
    return decision, pointer, history + looks
