"""`dg.reconstructable` targets for the distributed test and benchmark: module-level functions
with no arguments, so a Celery worker rebuilds the job from the function named in each task."""

import dagster as dg


def _resolved(name: str) -> dg.JobDefinition:
    from workflows.definitions import defs

    return defs.resolve_job_def(name)


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
