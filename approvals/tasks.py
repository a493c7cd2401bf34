"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def apply_changes_task(change_ids: list[int]) -> dict:
    from .services import apply_changes

    return apply_changes(change_ids=change_ids)


@shared_task
def sweep_task() -> dict:
    from .services import sweep

    return sweep()
