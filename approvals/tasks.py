"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError


@shared_task(acks_late=True, reject_on_worker_lost=True)
def apply_changes_task(change_ids: list[int]) -> dict:
    from .apply.services import apply_changes

    return apply_changes(change_ids=change_ids)


@shared_task
def sweep_task() -> dict:
    from .apply.services import sweep

    return sweep()


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_decision_task(self, delivery_id: int) -> str:
    """One attempt to POST a decision to the agent; the service decides whether and when to retry."""
    from .agents.callbacks import deliver_decision

    attempt = deliver_decision(delivery_id=delivery_id)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in)
    return attempt.state


@shared_task(acks_late=True)
def deliver_callbacks_task(delivery_ids: list[int]) -> int:
    """The next attempt of each of many deliveries (an undo's); each one that must retry is retried on its own."""
    from .agents.callbacks import deliver_many

    attempts = deliver_many(delivery_ids=delivery_ids)
    for delivery_id, attempt in attempts.items():
        if attempt.retry_in is not None:
            try:
                deliver_decision_task.apply_async(args=[delivery_id], countdown=attempt.retry_in)
            except BrokerError:
                pass  # still pending in the database: the resend sweep enqueues it again

    return len(attempts)


@shared_task
def resend_callbacks_task() -> int:
    from .agents.callbacks import resend_overdue

    return resend_overdue()


@shared_task
def send_review_digests_task() -> dict:
    from .review.digest import send_review_digests

    return send_review_digests()
