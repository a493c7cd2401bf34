"""The sweeper's Celery task (Celery beat runs it every SWEEP_EVERY_SECONDS)."""

from celery import shared_task

from .dispatcher import sweep


@shared_task
def sweep_outbox_task() -> dict:
    return sweep()
