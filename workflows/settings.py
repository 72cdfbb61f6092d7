"""Where runtime data lives and the other settings the environment gives (read when asked, never at import;
no other module outside cli/ reads the environment: test_layers.py), and the process setup every entry point
shares."""

import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "WORKFLOWS_DATA_DIR"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
PROFILE_ENV = "WORKFLOWS_PROFILE"  # the training profile when a command or run config names none
WORKERS_ENV = "WORKFLOWS_WORKERS"  # `workflows run/demo --workers` when not given
EXCHANGE_URL_ENV = "WORKFLOWS_EXCHANGE_URL"  # the exchange's base URL for `fetch` and `run --exchange`
CPU_SLOTS_ENV = "WORKFLOWS_CPU_TRAINING_SLOTS"
LOCK_DIR_ENV = "WORKFLOWS_DEVICE_LOCK_DIR"
MAX_FILE_BYTES_ENV = "WORKFLOWS_MAX_FILE_BYTES"


def _whole_number(name: str, what: str, example: str) -> int | None:
    """`$name` as a whole number; None when unset or blank."""
    raw = os.environ.get(name, "").strip()
    if raw and not raw.isdigit():
        raise ValueError(f"{name}={raw!r}: give a whole number of {what}, e.g. {example}")
    return int(raw) if raw else None


def requested_profile() -> str | None:
    """The training profile `$WORKFLOWS_PROFILE` names; None when unset or blank."""
    return os.environ.get(PROFILE_ENV, "").strip() or None


def cpu_training_slots() -> int | None:
    """`$WORKFLOWS_CPU_TRAINING_SLOTS`: how many CPU trainings run side by side; None when unset."""
    return _whole_number(CPU_SLOTS_ENV, "trainings", "4")


def max_file_bytes(default: int) -> int:
    """`$WORKFLOWS_MAX_FILE_BYTES`, the size cap on one input file; `default` when unset."""
    configured = _whole_number(MAX_FILE_BYTES_ENV, "bytes", "1073741824")
    return default if configured is None else configured


def device_lock_dir() -> Path:
    """Where the training device slots' locks live: `$WORKFLOWS_DEVICE_LOCK_DIR`, else a folder per user in the
    system temp directory (one per host)."""
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"workflows-devices-{os.getuid()}")


def dagster_home() -> Path:
    """The Dagster instance folder: `$DAGSTER_HOME` when the user set it (never overridden), else the
    project's `dagster_home/`. The CLI, the Makefile (`?=`) and `make ui` all resolve it this way, so
    `workflows run`, `make ingest` and the UI see one instance."""
    return Path(os.environ.get(DAGSTER_HOME_ENV) or PROJECT_ROOT / "dagster_home").expanduser().resolve()


def use_dagster_home() -> Path:
    """`dagster_home()`, exported as `$DAGSTER_HOME` for Dagster (the user's value when set, else the project's),
    and created."""
    home = dagster_home()
    os.environ[DAGSTER_HOME_ENV] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return home


def use_data_dir(root: str | os.PathLike) -> None:
    """Export the data folder a command was given (`--data-dir`) as `$WORKFLOWS_DATA_DIR`: the runs it executes
    and every process they start (a step's, a month's attention analysis) resolve the same folder."""
    os.environ[DATA_DIR_ENV] = str(root)


def requested_workers() -> str:
    """`$WORKFLOWS_WORKERS`, stripped ("" when unset)."""
    return os.environ.get(WORKERS_ENV, "").strip()


def exchange_url(default: str) -> str:
    """`$WORKFLOWS_EXCHANGE_URL` when set, else `default`."""
    return os.environ.get(EXCHANGE_URL_ENV) or default


def default_env(name: str, value: str) -> str:
    """Set `$name` for this process and those it starts unless the user set it; returns its value."""
    return os.environ.setdefault(name, value)


class _Under:
    """A path under `DataPaths.root`, read as an attribute (`paths.incoming`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, paths: "DataPaths", owner: object = None) -> Path:
        return paths.root / self.name


@dataclass(frozen=True)
class DataPaths:
    """Every runtime path hangs off one root, so `WORKFLOWS_DATA_DIR` relocates all of it."""

    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> "DataPaths":
        """`root` if given, else `$WORKFLOWS_DATA_DIR`, else `<project>/data`."""
        chosen = root or os.environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data"
        return cls(Path(chosen).expanduser().resolve())

    # the folders and the warehouse file under the root
    warehouse = _Under("warehouse.duckdb")
    incoming = _Under("incoming")
    processed = _Under("processed")
    quarantine = _Under("quarantine")
    checkpoints = _Under("checkpoints")
    reports = _Under("reports")

    def ensure(self) -> "DataPaths":
        for folder in (self.root, self.incoming, self.processed, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def default_sigterm() -> bool:
    """Give this process (and so every process it starts) the default SIGTERM action; True when it
    had been ignored.

    Dagster captures each step's output through `tail -F` processes, which it stops with SIGTERM
    and then waits up to 30 s for, per stream. A process started with SIGTERM ignored (some job
    runners and sandboxes do that) hands the ignore on to those tails: every step then waits a
    minute, and the tails outlive the run. The CLI and the test suite call this first."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return True
    return False
