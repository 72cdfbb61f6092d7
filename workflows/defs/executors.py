"""The same jobs on Dagster's Celery executor, with a Redis broker.

`ingest_celery`, `train_models_celery`, `retrain_celery` and `pipeline_celery` select
exactly what `ingest`, `train_models`, `retrain` and `pipeline` select; each step becomes a Celery task that
any worker listening on the broker runs (`scripts/celery_workers.sh` starts them,
`docs/deploy.md` shows the setup across machines). The broker and result backend
come from `WORKFLOWS_CELERY_BROKER` / `WORKFLOWS_CELERY_BACKEND` when a run starts
(e.g. `redis://queue.internal:6379/0` and `.../1`). Workers need the same Dagster
instance (`DAGSTER_HOME`: SQLite on one machine, Postgres across machines) and the
same data folder (`WORKFLOWS_DATA_DIR`).
"""

import dagster as dg
from dagster_celery import celery_executor

from workflows.defs.jobs import ingest_job, pipeline_job, retrain_job, train_job

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


celery_jobs = [on_celery(job) for job in (ingest_job, train_job, retrain_job, pipeline_job)]


def _resolved(name: str) -> dg.JobDefinition:
    from workflows.definitions import defs

    return defs.resolve_job_def(name)


# `dg.reconstructable` targets (module-level, no arguments): a worker rebuilds the job
# from the function named in each task; used by the distributed test and benchmark.
def ingest_celery_job() -> dg.JobDefinition:
    return _resolved("ingest_celery")


def train_celery_job() -> dg.JobDefinition:
    return _resolved("train_models_celery")


def retrain_celery_job() -> dg.JobDefinition:
    return _resolved("retrain_celery")


def ingest_in_process_job() -> dg.JobDefinition:
    return _resolved("ingest")


def train_in_process_job() -> dg.JobDefinition:
    return _resolved("train_models")


def retrain_in_process_job() -> dg.JobDefinition:
    return _resolved("retrain")
