"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def apply_changes_task(change_ids: list[int]) -> dict:
    from .services import apply_changes

    return apply_changes(change_ids=change_ids)


@shared_task
def sweep_task() -> dict:
    from .services import sweep

    return sweep()


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_decision_task(self, delivery_id: int) -> str:
    """One attempt to POST a decision to the agent; the service decides whether and when to retry."""
    from .callbacks import deliver_decision

    attempt = deliver_decision(delivery_id=delivery_id)
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in)
    return attempt.state


@shared_task
def resend_callbacks_task() -> int:
    from .callbacks import resend_overdue

    return resend_overdue()


@shared_task
def send_review_digests_task() -> dict:
    from .digest import send_review_digests

    return send_review_digests()
