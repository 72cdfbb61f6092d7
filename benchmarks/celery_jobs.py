"""`dg.reconstructable` targets for the distributed benchmark and test: module-level functions
with no arguments, so a Celery worker rebuilds the job from the function named in each task."""

import dagster as dg


def _resolved(name: str) -> dg.JobDefinition:
    from workflows.definitions import defs

    return defs.resolve_job_def(name)


def ingest_celery_job() -> dg.JobDefinition:
    return _resolved("ingest_celery")


def forecast_period_celery_job() -> dg.JobDefinition:
    return _resolved("forecast_period_celery")


def refresh_report_celery_job() -> dg.JobDefinition:
    return _resolved("refresh_report_celery")


def ingest_in_process_job() -> dg.JobDefinition:
    return _resolved("ingest")


def forecast_period_in_process_job() -> dg.JobDefinition:
    return _resolved("forecast_period")


def refresh_report_in_process_job() -> dg.JobDefinition:
    return _resolved("refresh_report")
