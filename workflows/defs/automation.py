"""Sensors and schedules: new files start ingest runs; daily, the current month's forecasts, then the report.

* `incoming_files` (sensor): a file dropped into `<data>/incoming` starts one run
  that lands it (`land_candles` job), once per file version (run key = name, size
  and modification time), oldest first, at most `MAX_FILES_PER_RUN` files a run.
  A file is left for the next tick while it is still being written (modified in
  the last `SETTLE_SECONDS`, or changed while it was read; writers should copy
  in `NAME.part` and rename it when complete, see workflows/data/ingest.py). A
  file that cannot be read, for whatever reason, goes to quarantine with that
  reason and the other files go on; symbolic links and paths resolving outside
  the folder are refused and reported. New symbols become new partitions.
* `daily_forecasts` (schedule, 01:30 UTC): one `forecast_period` run per symbol for
  the current month: its models train once when the month is new (warm-started
  from the previous month's), otherwise nothing trains and the new hours' forecasts
  are added to the forecast log; and one for the previous month while its newest
  `forecasts` materialization says it is not complete (its last 24 origins' targets
  land in the new month's first day), so every month closes unattended at all its
  hours, or a features rebuild since then started before its last targets (a
  corrected candle: its hours from a day before it are recomputed). This is the only
  place models train on a schedule.
* `daily_report` (schedule, 02:00 UTC): one `refresh_report` run per symbol: the model
  assets point at the newest period's models (nothing trains), the evaluation
  re-pools the forecast log, then attention analysis, report, promotion gate and
  served forecast.
* `hourly_exchange_ingest` (schedule, off by default): fetches closed candles
  from the exchange for every symbol.
* Declarative automation (on the assets): features, evaluation, attention,
  report, production model and forecast follow their upstream eagerly; the
  `automation` sensor that evaluates those conditions is on by default, so the
  graph keeps itself fresh as soon as `make ui` starts the daemon.
"""

import json
import time
from datetime import timedelta

import dagster as dg

from workflows.data.ingest import MAX_FILES_PER_RUN as MAX_FILES_PER_RUN  # the tests read it here
from workflows.data.ingest import plan_incoming
from workflows.defs.jobs import candles_job, forecast_period_job, refresh_report_job
from workflows.defs.partitions import SYMBOLS, period_key, symbols_partitions
from workflows.defs.resources import WarehouseResource
from workflows.ml.periods import ForecastPeriod
from workflows.ml.windows import WindowSpec


@dg.sensor(
    job=candles_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lands new candle files from <data>/incoming, one run per symbol and batch of files.",
)
def incoming_files(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    seen = json.loads(context.cursor)["seen"] if context.cursor else {}
    plan = plan_incoming(warehouse.paths(), seen, time.time())
    for level, message in plan.messages:
        getattr(context.log, level)(message)
    run_requests = [
        dg.RunRequest(
            run_key=batch.run_key,
            partition_key=batch.symbol,
            run_config={
                "ops": {
                    "candles": {
                        "config": {"source": "files", "files": [str(p) for p, _ in batch.files], "archive": True}
                    }
                }
            },
            tags={"incoming_files": str(len(batch.files))},
        )
        for batch in plan.batches
    ]
    new_symbols = sorted(plan.symbols - set(context.instance.get_dynamic_partitions(SYMBOLS)))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[symbols_partitions.build_add_request(new_symbols)] if new_symbols else [],
        cursor=json.dumps({"seen": plan.seen}),
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (on by default, unlike Dagster's own default sensor).",
)


def _per_symbol(context, run_config: dict | None = None) -> list[dg.RunRequest]:
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    return [
        dg.RunRequest(run_key=f"{symbol}|{stamp}", partition_key=symbol, run_config=run_config or {})
        for symbol in context.instance.get_dynamic_partitions(SYMBOLS)
    ]


@dg.schedule(
    job=refresh_report_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every symbol's report from its forecast log after the 01:30 forecasts: the newest period's "
    "models (trains nothing), evaluation, attention analysis, report, gate and served forecast.",
)
def daily_report(context: dg.ScheduleEvaluationContext):
    requests = _per_symbol(context)
    return requests or dg.SkipReason("no symbols yet: ingest candles first")


def previous_month_open(instance: dg.DagsterInstance, symbol: str, period: str) -> bool:
    """Whether the previous month of `symbol` needs another `forecasts` run: its newest materialization says it is
    not complete (some origin's targets had not landed; or it was made before completeness was recorded), or a
    `features` rebuild since then started before the month's last targets (a corrected candle inside the month
    or in the day after it: its last hours are recomputed). A month never materialized is not opened here:
    `workflows run` backfills the history."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("forecasts"), asset_partitions=[str(period_key(symbol, period))]),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return False
    complete = records[0].asset_materialization.metadata.get("complete")
    if complete is None or complete.value is not True:
        return True
    month = ForecastPeriod.from_key(period)
    rebuilt = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("features"), asset_partitions=[symbol], after_timestamp=records[0].timestamp
        ),
        limit=1000,
    ).records
    last_target = (month.end + timedelta(hours=WindowSpec().vol_horizon)).isoformat()
    for record in rebuilt:
        start = record.asset_materialization.metadata.get("rebuilt_from") if record.asset_materialization else None
        if start is not None and (start.value == "start" or str(start.value) < last_target):
            return True
    return False


@dg.schedule(
    job=forecast_period_job,
    cron_schedule="30 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The current month of every symbol (its models once when the month is new, the new hours' "
    "forecasts), and the previous month until its forecasts are complete (its last origins' targets land in the "
    "first day of the new month).",
)
def daily_forecasts(context: dg.ScheduleEvaluationContext):
    current = ForecastPeriod.of(context.scheduled_execution_time)
    previous = current.previous().key
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    requests = []
    for symbol in context.instance.get_dynamic_partitions(SYMBOLS):
        periods = [previous] if previous_month_open(context.instance, symbol, previous) else []
        requests += [
            dg.RunRequest(run_key=f"{symbol}|{period}|{stamp}", partition_key=period_key(symbol, period))
            for period in [*periods, current.key]
        ]
    return requests or dg.SkipReason("no symbols yet: ingest candles first")


@dg.schedule(
    job=candles_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly fetch of closed candles from the exchange (off by default: needs the network).",
)
def hourly_exchange_ingest(context: dg.ScheduleEvaluationContext):
    config = {"ops": {"candles": {"config": {"source": "exchange"}}}}
    return _per_symbol(context, config) or dg.SkipReason("no symbols yet")
