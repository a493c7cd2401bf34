"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_undo_task(undo_id: int) -> dict | None:
    from .services import execute_undo

    undo = execute_undo(undo_id=undo_id)
    return None if undo is None else {"undo": undo.pk, "status": undo.status, "records": undo.records_reverted}


@shared_task
def sweep_undos_task() -> int:
    from .services import sweep_undos

    return sweep_undos()
