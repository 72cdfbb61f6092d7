"""What the terminal shows while a Dagster run executes in this process.

By default: one line per step, a progress bar for training epochs, warnings and
errors in full. The full event stream still goes to the run's
event log (the UI shows it); with `verbose`, Dagster's own console logger prints it
as well. The lines come from the run's event log (public `DagsterInstance` API), read
while the run executes in a worker thread, so no domain code prints anything: the
training loop's `callback(EpochReport)` reaches the event log through the assets'
`context.log` as `ml.progress` lines, parsed back here by the same module.
"""

import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

import dagster as dg
from tqdm import tqdm

from workflows.ml.progress import EpochProgress, parse_progress

BAR = "{desc}: {percentage:3.0f}%|{bar:24}| {n}/{total} [{elapsed}] {postfix}"

T = TypeVar("T")


def console_config(verbose: bool) -> dict:
    """Run config for Dagster's console logger: everything with `verbose`, else nothing (we render)."""
    return {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}


class StepRenderer:
    """Turns event-log records into the short terminal view."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.bar: tqdm | None = None
        self.bar_key: tuple | None = None
        self.started: dict[str, float] = {}

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.bar_key = None, None

    def _bar(self, key: tuple, total: int, desc: str, n: int, postfix: str = "") -> None:
        if self.bar_key != key:
            self._close_bar()
            self.bar = tqdm(total=total, desc=desc, file=self.stream, leave=False, dynamic_ncols=True, bar_format=BAR)
            self.bar_key = key
        bar = self.bar
        assert bar is not None  # opened above whenever the key changed
        bar.n = n
        if postfix:
            bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def _print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.clear()
        print(text, file=self.stream, flush=True)
        if self.bar is not None:
            self.bar.refresh()

    def handle(self, entry) -> None:
        step = entry.step_key or ""
        event = entry.dagster_event
        if event is not None:
            kind = event.event_type
            if kind == dg.DagsterEventType.STEP_START:
                self.started[step] = entry.timestamp
            elif kind == dg.DagsterEventType.STEP_SUCCESS:
                self._close_bar()
                seconds = entry.timestamp - self.started.get(step, entry.timestamp)
                self._print(f"  ok   {step:<28} {seconds:7.1f} s")
            elif kind == dg.DagsterEventType.STEP_FAILURE:
                self._close_bar()
                error = event.step_failure_data.error if event.step_failure_data else None
                self._print(f"  FAILED {step}\n{error.to_string() if error else entry.message}")
            elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                data = event.event_specific_data
                if data is not None and not data.passed:
                    self._print(f"  check {data.check_name} on {data.asset_key.to_user_string()} did not pass")
            elif kind == dg.DagsterEventType.RUN_FAILURE:
                self._close_bar()
                self._print(f"run failed: {entry.message}")
            return
        message = entry.user_message or ""
        if entry.level >= 30:  # logging.WARNING: in full
            self._print(f"  {'WARNING' if entry.level < 40 else 'ERROR'} {step}: {message}")
            return
        progress = parse_progress(message)
        if isinstance(progress, EpochProgress):
            member = progress.member
            desc = f"  {step}" + (f" member {member}/{progress.members}" if member is not None else "")
            self._bar((step, member), progress.epochs, desc, progress.epoch, progress.detail[:60])


class RunInterrupted(Exception):
    """Ctrl-C (SIGINT) while the run `run_id` executed in its worker thread: the caller cancels it in the
    instance and ends the process (the worker thread is left to the exit, never joined)."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


# `dg.execute_job` (a run whose steps run in other processes) picks its own run id: such a run carries this tag
# with the id `execute_with_progress` handed it, by which its events are found.
PROGRESS_TAG = "workflows/progress"


def run_of(instance, ref: str) -> str | None:
    if instance.get_run_by_id(ref) is not None:
        return ref
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PROGRESS_TAG: ref}), limit=1)
    return runs[0].run_id if runs else None


def execute_with_progress(execute: Callable[[str], T], instance, verbose: bool, poll_s: float = 0.3, stream=None) -> T:
    """Run `execute(ref)` (an `execute_in_process` call with run_id=ref, or a `dg.execute_job` whose run is tagged
    `PROGRESS_TAG` = ref) in a worker thread and render its events. Ctrl-C while it runs raises
    `RunInterrupted(run_id)`."""
    ref = str(uuid.uuid4())
    run_id = None
    box: dict = {}

    def work():
        try:
            box["result"] = execute(ref)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="dagster-run", daemon=True)
    worker.start()
    renderer = None if verbose else StepRenderer(stream)
    cursor = None
    try:
        while True:
            alive = worker.is_alive()
            run_id = run_id or run_of(instance, ref)
            if renderer is not None and run_id is not None:
                conn = instance.get_records_for_run(run_id, cursor=cursor)
                for record in conn.records:
                    renderer.handle(record.event_log_entry)
                cursor = conn.cursor
                if conn.has_more:
                    continue
            if not alive:
                break
            time.sleep(poll_s)
        worker.join()
    except KeyboardInterrupt:
        if renderer is not None:
            renderer._close_bar()
        raise RunInterrupted(run_id or run_of(instance, ref) or ref) from None
    if renderer is not None:
        renderer._close_bar()
    if "error" in box:
        raise box["error"]
    return box["result"]


@contextmanager
def epoch_bar(name: str, stream=None):
    """A `fit` callback `(member, EpochReport)` that draws one progress bar per member."""
    state: dict = {}

    def callback(member: int, report) -> None:
        bar = state.get(member)
        if bar is None:
            for old in state.values():
                old.close()
            bar = state[member] = tqdm(
                total=report.epochs, desc=f"  {name} epochs", file=stream or sys.stdout, leave=True, bar_format=BAR
            )
        bar.n = report.epoch
        bar.set_postfix_str(f"train {report.train_loss:.4f} val {report.val_loss:.4f}", refresh=False)
        bar.refresh()

    try:
        yield callback
    finally:
        for bar in state.values():
            bar.close()
