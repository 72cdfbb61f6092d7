"""A month's attention analysis beside the next month's trainings (`workflows run --workers N`, N > 1).

The next month's models warm-start from this month's models, never from its attention analysis. So with
several workers a backfill runs each month in two Dagster runs: the models and forecasts, then the
`period_attention` step alone, in a process of its own that goes on while the next month's models train.
The analysis claims a CPU training slot like a training, so the cores stay busy across the month boundary
instead of one idling while the analysis runs on the other. At most one analysis is in flight: the next
month's warm-starts its controls from this month's, and it starts only once this one has finished.

A process, not a thread: two Dagster runs starting and logging in one process can deadlock in Python's
`logging` (a run's start reconfigures logging while the other run's handlers hold their locks).
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

from workflows.cli.instance import cancel_run
from workflows.cli.terminal import RunInterrupted

ATTENTION_STEP = "period_attention"
STOP_WAIT_S = 60  # how long an interrupted analysis may take to cancel its run before it is killed
CHILD = "import sys\nfrom workflows.cli.overlap import analyse_month\nsys.exit(analyse_month(sys.argv[1:]))"


class AttentionInFlight:
    """The `period_attention` run of one month (`key`, its partition), in a child process (`analyse_month`)."""

    def __init__(self, instance, key: str, period: str, protocol: dict) -> None:
        self.instance, self.period = instance, period
        self.run_id = str(uuid.uuid4())
        self.started = time.perf_counter()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, key, json.dumps(protocol), self.run_id], stdin=subprocess.DEVNULL
        )

    def finish(self, beside_next: bool = True) -> bool:
        """Wait for the analysis; say how it went (`beside_next`: it ran beside the next month's models). False:
        it failed (the child said why). Ctrl-C while waiting stops it and raises `RunInterrupted`."""
        try:
            code = self._proc.wait()
        except KeyboardInterrupt:
            self.stop()
            raise RunInterrupted(self.run_id) from None
        if code != 0:
            print(f"period {self.period}: the attention analysis (run {self.run_id}) failed", file=sys.stderr)
            return False
        seconds = time.perf_counter() - self.started
        beside = " (beside the next month's models)" if beside_next else ""
        print(f"  ok   {ATTENTION_STEP} {self.period} {seconds:7.1f} s{beside}")
        return True

    def stop(self) -> None:
        """Ctrl-C stopped the command: interrupt the analysis (a terminal's Ctrl-C reached it already; a signal
        to this process alone did not), kill it if it does not end, and mark its run CANCELED."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        cancel_run(self.instance, self.run_id)


def analyse_month(argv: list[str]) -> int:
    """The child: one `forecast_period` partition's `period_attention` step as run `run_id`, in this process.
    Exits 0 (done), 1 (failed: the root causes printed) or 130 (Ctrl-C: the run canceled)."""
    import dagster as dg

    from workflows.cli.instance import open_instance
    from workflows.cli.runs import failure_messages
    from workflows.cli.terminal import console_config, execute_with_progress
    from workflows.definitions import defs
    from workflows.defs.assets_attention import PeriodAttentionConfig

    key, protocol, run_id = argv[0], json.loads(argv[1]), argv[2]
    instance = open_instance()
    ops = {ATTENTION_STEP: PeriodAttentionConfig(**protocol)} if protocol else {}
    config = dg.RunConfig(ops=ops, loggers=console_config(False))
    job = defs.resolve_job_def("forecast_period")
    try:
        result = execute_with_progress(
            lambda _ref: job.execute_in_process(
                run_config=config,
                instance=instance,
                partition_key=key,
                asset_selection=[dg.AssetKey(ATTENTION_STEP)],
                raise_on_error=False,
                run_id=run_id,
            ),
            instance,
            verbose=True,  # the parent says how it went
        )
    except RunInterrupted:
        cancel_run(instance, run_id)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # the run's thread is not joined (as `instance.interrupted`)
    if not result.success:
        print(f"{ATTENTION_STEP} {key}: {' '.join(failure_messages(result))}", file=sys.stderr)
        return 1
    return 0
