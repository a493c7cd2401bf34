"""Review decisions, applying approved changes, and the sweeper."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from undo import registry
from undo.apply import ApplyConflict, ApplyError, apply_change
from undo.history import Tags

from . import lifecycle
from .lifecycle import Actor
from .models import Change

logger = logging.getLogger(__name__)
S = Change.Status


class NotAllowed(Exception):
    """The person may not do this; the message says why."""


# Review ----------------------------------------------------------------------


def can_review(user, change: Change) -> bool:
    """Members of the change's review group (or the reviewers group) and admins review it."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    groups = {g.name for g in user.groups.all()}
    return change.review_group in groups or "reviewers" in groups


def _check_reviewable(user, change: Change) -> None:
    if not can_review(user, change):
        raise NotAllowed(f"You are not in the {change.review_group or 'reviewers'} group that reviews this change.")
    if change.status not in (S.PENDING_REVIEW, S.CONFLICT):
        # Someone decided it between the page load and the click.
        raise lifecycle.ChangeMoved(change, change.status)


def approve_change(*, change: Change, user) -> Change:
    """A person approves: the change is queued and a worker applies it."""
    _check_reviewable(user, change)
    fields = {"approver": user, "decided_at": timezone.now()}
    reason = ""
    if change.status == S.CONFLICT:
        # The reviewer decided on the record as it is now: that is the new expected state.
        fields["expected"] = _current_expected(change)
        reason = "Approved again on the record as it is now."
    with transaction.atomic():
        lifecycle.transition(change, S.APPROVED, actor=Actor.person(user), reason=reason, **fields)
        _queue(change, actor=Actor.person(user))
    return change


def reject_change(*, change: Change, user, reason: str) -> Change:
    """A person rejects, with a reason the agent can read."""
    _check_reviewable(user, change)
    reason = reason.strip()
    if not reason:
        raise NotAllowed("Say why you reject the change: the agent reads the reason.")
    return lifecycle.transition(
        change,
        S.REJECTED,
        actor=Actor.person(user),
        reason=f"Reason: {reason}",
        approver=user,
        reject_reason=reason,
        decided_at=timezone.now(),
    )


def _current_expected(change: Change) -> dict:
    rtype = registry.get(change.record_type)
    records = rtype.queryset().in_bulk(change.record_ids)
    names = list(change.values)
    return {str(pk): rtype.current_values(records[pk], names) for pk in change.record_ids if pk in records}


def _queue(change: Change, *, actor: Actor) -> None:
    to = S.HELD if change.workflow.is_paused else S.QUEUED
    lifecycle.transition(change, to, actor=actor, enqueued_at=timezone.now() if to == S.QUEUED else None)
    if to == S.QUEUED:
        transaction.on_commit(partial(enqueue_apply, [change.pk]))


# Applying ---------------------------------------------------------------------


def enqueue_apply(change_ids: list[int]) -> None:
    """Hand queued changes to the workers, in batches. If the broker is down, the sweeper retries."""
    from .tasks import apply_changes_task

    size = settings.APPLY_BATCH_SIZE
    for start in range(0, len(change_ids), size):
        batch = change_ids[start : start + size]
        try:
            apply_changes_task.delay(batch)
        except BrokerError as exc:
            logger.warning("Broker unavailable (%s); %d queued changes wait for the sweeper", exc, len(batch))
            return


def apply_changes(*, change_ids: Iterable[int]) -> dict[str, int]:
    """Claim the queued changes among `change_ids` and apply each atomically; returns counts by outcome.

    Safe to run twice: only changes still queued are claimed, and a change is
    marked applied in the same transaction that writes its records.
    """
    worker = Actor.system("worker")
    claimed = lifecycle.claim(change_ids, lease_seconds=settings.APPLY_LEASE_SECONDS, actor=worker)
    counts = {"applied": 0, "conflict": 0, "failed": 0, "retry": 0}
    for change in claimed:
        counts[_apply_one(change, worker)] += 1
    return counts


def _apply_one(change: Change, worker: Actor) -> str:
    try:
        return _apply_or_explain(change, worker)
    except lifecycle.ChangeMoved as exc:
        # Our lease expired and another worker re-claimed the change: it is theirs now.
        logger.info("change %s was taken over by another worker (now %s)", change.pk, exc.current)
        return "retry"


def _apply_or_explain(change: Change, worker: Actor) -> str:
    # Every move is guarded by the attempt, so a worker whose claim was taken over can neither write nor judge.
    mine = {"attempts": change.attempts}
    tags = Tags(change_id=change.pk, run_id=change.run_id, agent_id=change.agent_id, agent_label=str(change.agent))
    try:
        with transaction.atomic():
            written = apply_change(
                record_type=change.record_type,
                operation=change.operation,
                record_ids=change.record_ids,
                values=change.values,
                expected=change.expected,
                tags=tags,
                user=change.approver,
                reason=f"change {change.pk} by {change.agent} (run {change.run_id})",
            )
            lifecycle.transition(
                change,
                S.APPLIED,
                actor=worker,
                guard=mine,
                applied_at=timezone.now(),
                applied_record_ids=written,
                lease_until=None,
                last_error="",
            )
        return "applied"
    except ApplyConflict as exc:
        # Back to a person: the record type's owners, if routing had sent it to nobody.
        group = change.review_group or registry.get(change.record_type).owner_group
        lifecycle.transition(
            change,
            S.CONFLICT,
            actor=worker,
            reason=str(exc),
            guard=mine,
            lease_until=None,
            last_error=str(exc),
            review_group=group,
        )
        return "conflict"
    except ApplyError as exc:
        lifecycle.transition(
            change, S.FAILED, actor=worker, reason=str(exc), guard=mine, lease_until=None, last_error=str(exc)
        )
        return "failed"
    except DatabaseError as exc:
        logger.exception("database error applying change %s", change.pk)
        return _retry_or_fail(change, worker, f"database error: {exc}", guard=mine)


def _retry_or_fail(change: Change, worker: Actor, error: str, guard: dict | None = None) -> str:
    if change.attempts >= settings.APPLY_MAX_ATTEMPTS:
        reason = f"Gave up after {change.attempts} attempts. Last error: {error}"
        lifecycle.transition(
            change, S.FAILED, actor=worker, reason=reason, guard=guard, lease_until=None, last_error=error
        )
        return "failed"
    lifecycle.transition(
        change,
        S.QUEUED,
        actor=worker,
        reason=f"Will retry: {error}",
        guard=guard,
        lease_until=None,
        last_error=error,
        enqueued_at=None,
    )
    return "retry"


# The sweeper -----------------------------------------------------------------


def sweep() -> dict[str, int]:
    """Recover work the broker lost: expired claims are retried (or failed after too
    many attempts) and queued changes nobody picked up are enqueued again."""
    now = timezone.now()
    sweeper = Actor.system("sweeper")
    expired = list(Change.objects.filter(status=S.APPLYING, lease_until__lt=now))
    for change in expired:
        try:
            _retry_or_fail(
                change,
                sweeper,
                "the worker did not finish in time (lost or killed)",
                guard={"attempts": change.attempts},
            )
        except lifecycle.ChangeMoved as exc:
            logger.info("sweeper: change %s finished after all (%s)", change.pk, exc.current)
    stale = now - timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)
    waiting = list(
        Change.objects.filter(status=S.QUEUED)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .order_by("id")
        .values_list("pk", flat=True)[:10_000]
    )
    if waiting:
        Change.objects.filter(pk__in=waiting, status=S.QUEUED).update(enqueued_at=now)
        enqueue_apply(waiting)
    return {"expired": len(expired), "requeued": len(waiting)}
