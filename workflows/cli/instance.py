"""The Dagster instance the commands run against (a fresh one gets the project's dagster.yaml), and
Ctrl-C: the run canceled in it, what was kept, the command that resumes."""

import os
import sys
from pathlib import Path

from workflows.settings import dagster_home, use_dagster_home


def open_instance():
    """The instance in `settings.dagster_home()` ($DAGSTER_HOME when set, else the project's dagster_home/).

    Two commands started at once on a fresh home would both create the SQLite tables
    and one would fail ("table ... already exists"): creation is serialised by a lock."""
    import dagster as dg
    from filelock import FileLock

    home = use_dagster_home()  # the user's $DAGSTER_HOME when set, else ours, exported for Dagster
    with FileLock(home / ".instance.lock"):
        write_instance_config(home)
        instance = dg.DagsterInstance.get()
        # touch every storage so that its tables exist before the lock is released
        instance.get_runs(limit=1)
        instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1
        )
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
    return instance


def write_instance_config(home: Path) -> None:
    """A fresh instance folder gets the project's dagster.yaml (SQLite storage under it, telemetry off, the pools'
    default limit), so Dagster never warns that there is none; an existing file is the user's and is kept."""
    from workflows.io import write_text_atomic
    from workflows.settings import PROJECT_ROOT

    target, ours = home / "dagster.yaml", PROJECT_ROOT / "dagster_home" / "dagster.yaml"
    if not target.exists() and ours.exists() and ours.resolve() != target.resolve():
        write_text_atomic(target, ours.read_text())


def cancel_run(instance, run_id: str) -> None:
    """Mark a run CANCELED in the instance (unless it finished) and free the pool slots its steps held (the `gpu`
    pool is 1 on 2 cores): else a resumed run waits for them forever, as Dagster frees them only for runs it ends
    itself."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message="interrupted in the terminal (Ctrl-C)")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def interrupted(run_id: str | None, argv: list[str]) -> int:
    """Ctrl-C: cancel the run in the instance (so the UI does not show it running forever) and free the pool
    slots its steps held, say what was kept
    and the command that resumes, and end the process at once with 130 (128 + SIGINT). The run's worker thread
    is not joined: `os._exit` ends it with the process, before the interpreter's shutdown could abort inside
    torch ("terminate called without an active exception")."""
    import shlex

    import dagster as dg

    print("\ninterrupted (Ctrl-C)", file=sys.stderr)
    if run_id is not None:
        instance = dg.DagsterInstance.get()
        cancel_run(instance, run_id)
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
        ).records
        kept = []
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None or event.asset_key is None:
                continue
            partition = f" [{event.partition}]" if event.partition else ""
            kept.append(f"{event.asset_key.to_user_string()}{partition}")
        print(f"run {run_id} marked CANCELED in the Dagster instance ({dagster_home()})", file=sys.stderr)
        print(
            f"kept: {', '.join(kept) if kept else 'nothing from this run'}; every earlier run's results stand, and "
            "trained period models are reused (nothing already trained is trained again)",
            file=sys.stderr,
        )
    print(f"resume with: workflows {shlex.join(argv)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)
