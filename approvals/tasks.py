"""Celery tasks: thin wrappers that take ids and call services.

Services hand them to the workers through the outbox (`countersign.outbox.dispatcher`), by name:
they never import this module, so a task may run twice and each one is safe to.
"""

from __future__ import annotations

from celery import shared_task

from .agents.callbacks import deliver_decision, deliver_many
from .apply.services import apply_changes, sweep
from .review.digest import send_review_digests
from .workflows.alerts import send_pause_alert


@shared_task(acks_late=True, reject_on_worker_lost=True)
def apply_changes_task(change_ids: list[int]) -> dict:
    return apply_changes(change_ids=change_ids)


@shared_task
def sweep_claims_task() -> dict:
    return sweep()


@shared_task(acks_late=True)
def deliver_decision_task(delivery_id: int) -> str:
    """One attempt to POST a decision to the agent; the service hands over the next one, if any, for later."""
    return deliver_decision(delivery_id=delivery_id).state


@shared_task(acks_late=True)
def deliver_callbacks_task(delivery_ids: list[int]) -> int:
    """The next attempt of each of many deliveries (an undo's); each one that must retry is retried on its own."""
    return len(deliver_many(delivery_ids=delivery_ids))


@shared_task
def send_review_digests_task() -> dict:
    return send_review_digests()


@shared_task(acks_late=True)
def send_pause_alert_task(event_id: int) -> bool:
    """Email the alert of one pause (its `paused` event); sends once however often it runs."""
    return send_pause_alert(event_id=event_id)
