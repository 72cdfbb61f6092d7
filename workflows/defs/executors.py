"""The same jobs on Dagster's Celery executor, with a Redis broker.

`ingest_celery`, `forecast_period_celery`, `refresh_report_celery` and `pipeline_celery`
select exactly what `ingest`, `forecast_period`, `refresh_report` and `pipeline` select
(and the same partitions); each step becomes a Celery task that
any worker listening on the broker runs (`scripts/celery_workers.sh` starts them,
`docs/deploy.md` shows the setup across machines). The broker and result backend
come from `WORKFLOWS_CELERY_BROKER` / `WORKFLOWS_CELERY_BACKEND` when a run starts
(e.g. `redis://queue.internal:6379/0` and `.../1`). Workers need the same Dagster
instance (`DAGSTER_HOME`: SQLite on one machine, Postgres across machines) and the
same data folder (`WORKFLOWS_DATA_DIR`).
"""

import dagster as dg
from dagster_celery import celery_executor

from workflows.defs.jobs import forecast_period_job, ingest_job, pipeline_job, refresh_report_job

celery_redis_executor = celery_executor.configured(
    {"broker": {"env": "WORKFLOWS_CELERY_BROKER"}, "backend": {"env": "WORKFLOWS_CELERY_BACKEND"}},
    name="celery_redis",
)


def on_celery(job):
    """The same selection and partitions as `job`, each step a Celery task."""
    return dg.define_asset_job(
        f"{job.name}_celery",
        selection=job.selection,
        executor_def=celery_redis_executor,
        description=f"{job.description} Each step runs on a Celery worker.",
    )


celery_jobs = [on_celery(job) for job in (ingest_job, forecast_period_job, refresh_report_job, pipeline_job)]
