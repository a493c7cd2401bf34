"""Celery tasks: thin wrappers that take ids and call services. They are handed to the workers
through `undo.host.dispatch` (the host's outbox), and are safe to run twice."""

from celery import shared_task

from .services import execute_undo


@shared_task(acks_late=True, reject_on_worker_lost=True)
def execute_undo_task(undo_id: int) -> dict | None:
    undo = execute_undo(undo_id=undo_id)
    return None if undo is None else {"undo": undo.pk, "status": undo.status, "records": undo.records_reverted}
