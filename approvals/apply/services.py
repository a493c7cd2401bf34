"""Applying approved changes: handing them to the workers, claiming, writing, and the sweeper of
claims that ran out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from contextlib import contextmanager

from django import db
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from countersign.outbox.dispatcher import dispatch_each
from undo import registry
from undo.apply import ApplyConflict, ApplyError, apply_change
from undo.history import Tags

from .. import lifecycle
from ..lifecycle import Actor
from ..models import Change
from ..workflows import auto_pause

logger = logging.getLogger(__name__)
S = Change.Status
APPLY_TASK = "approvals.tasks.apply_changes_task"


def enqueue_apply(change_ids: list[int]) -> None:
    """Hand queued changes to the workers, a task per APPLY_BATCH_SIZE of them, once the caller's
    transaction commits (through the outbox: off the request thread, swept if the broker loses them)."""
    size = settings.APPLY_BATCH_SIZE
    dispatch_each(APPLY_TASK, ([change_ids[start : start + size]] for start in range(0, len(change_ids), size)))


def apply_changes(*, change_ids: Iterable[int]) -> dict[str, int]:
    """Claim the queued changes among `change_ids` and apply each atomically; returns counts by outcome.

    Safe to run twice: only changes still queued are claimed, and a change is
    marked applied in the same transaction that writes its records.
    """
    worker = Actor.system("worker")
    claimed = lifecycle.claim(change_ids, lease_seconds=settings.APPLY_LEASE_SECONDS, actor=worker)
    counts = {"applied": 0, "conflict": 0, "failed": 0, "retry": 0, "held": 0}
    # Burst and same value are counted on as the batch applies: a runaway run pauses mid-batch.
    tally = auto_pause.Tally.before(claimed) if claimed else None
    with _heartbeat(claimed):
        for change in claimed:
            outcome = _apply_one(change, worker)
            counts[outcome] += 1
            if outcome == "applied" and tally is not None:
                tally.applied(change)
    # Once for the batch, not per change: its outcomes can move these signals only. Each change
    # committed in its own transaction above, so the check reads them all (see auto_pause); what
    # the tally counted exactly is not read again.
    ids = {c.workflow_id for c in claimed}
    todo = tally.still_to_check(ids) if tally is not None else dict.fromkeys(ids, auto_pause.AFTER_APPLY)
    fields = auto_pause.fields_of(claimed)
    for workflow_id, signals in todo.items():
        auto_pause.check_after_commit([workflow_id], signals, fields=fields)
    return counts


@contextmanager
def _heartbeat(claimed: list[Change]):
    """Renew the claims' short lease while this worker lives, every third of it. A worker that
    dies (kill -9, a lost machine) stops renewing, and the sweeper retries its changes once the
    lease runs out: seconds, not minutes. A live worker never loses its claims this way."""
    if not claimed:
        yield
        return
    stop = threading.Event()
    lease = settings.APPLY_LEASE_SECONDS

    def beat() -> None:
        try:
            while not stop.wait(lease / 3):
                try:
                    lifecycle.renew(claimed, lease_seconds=lease)
                except DatabaseError:
                    logger.warning("could not renew the lease of %d changes; retrying", len(claimed), exc_info=True)
        finally:
            db.connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name="apply-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
            # The kill switch again, in this change's own transaction: claimed before a pause,
            # not begun when it committed, it is held; one already writing finishes first.
            if lifecycle.paused_workflows([change.workflow_id]):
                lifecycle.transition(
                    change,
                    S.HELD,
                    actor=worker,
                    reason="Its workflow was paused before the worker began writing it.",
                    guard=mine,
                    lease_until=None,
                )
                return "held"
            written = apply_change(
                record_type=change.record_type,
                operation=change.operation,
                record_ids=change.record_ids,
                # The reviewer's correction, when there is one (the agent's proposal stays on the change).
                values=change.values_to_apply(),
                expected=change.expected,
                tags=tags,
                user=change.approver,
                reason=_apply_reason(change),
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
        with transaction.atomic():
            outcome = _retry_or_fail(change, worker, f"database error: {exc}", guard=mine)
            if outcome == "retry":
                enqueue_apply([change.pk])
        return outcome


def _apply_reason(change: Change) -> str:
    reason = f"change {change.pk} by {change.agent} (run {change.run.external_id})"
    if change.is_edited:
        rtype = registry.get(change.record_type)
        who = change.edited_by.get_username() if change.edited_by_id else "a reviewer"
        proposed = ", ".join(f"{rtype.fields[n].label} {rtype.display(n, v)}" for n, v in change.values.items())
        reason += f", values corrected by {who} (the agent proposed {proposed})"
    return reason


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
        enqueued_at=timezone.now(),  # the caller hands it to the workers again
    )
    return "retry"


# The sweeper of claims ---------------------------------------------------------------


def sweep() -> dict[str, int]:
    """Take back the claims of workers that died (their lease ran out): each change is queued and
    handed to the workers again, or failed after APPLY_MAX_ATTEMPTS. (Tasks the broker lost are
    the outbox's to hand over again: countersign.outbox.dispatcher.sweep.)"""
    sweeper = Actor.system("sweeper")
    requeued: list[int] = []
    with transaction.atomic():
        expired = list(Change.objects.filter(status__in_constants=[S.APPLYING], lease_until__lt=timezone.now()))
        for change in expired:
            try:
                outcome = _retry_or_fail(
                    change,
                    sweeper,
                    "the worker did not finish in time (lost or killed)",
                    guard={"attempts": change.attempts},
                )
            except lifecycle.ChangeMoved as exc:
                logger.info("sweeper: change %s finished after all (%s)", change.pk, exc.current)
                continue
            if outcome == "retry":
                requeued.append(change.pk)
        if requeued:
            enqueue_apply(requeued)
    return {"expired": len(expired), "requeued": len(requeued)}
