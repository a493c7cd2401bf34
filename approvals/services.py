"""Review decisions (four-eyes, edits, bulk), applying approved changes, and the sweeper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django import db
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from undo import registry
from undo.apply import ApplyConflict, ApplyError, apply_change
from undo.history import Tags

from . import broker, lifecycle
from .lifecycle import Actor
from .models import WAITING, Approval, Change, Event

logger = logging.getLogger(__name__)
S = Change.Status


class NotAllowed(Exception):
    """The person may not do this; the message says why."""


class InvalidEdit(ValueError):
    """A reviewer's corrected values do not fit; `errors` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


# Review ----------------------------------------------------------------------


def reviewer_groups(user) -> frozenset[str]:
    """The names of the user's groups, read once per user object (a page asks for every item)."""
    cached = getattr(user, "_countersign_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True)) if user.is_authenticated else frozenset()
        user._countersign_groups = cached
    return cached


def can_review(user, change: Change) -> bool:
    """Members of the change's review group (or the reviewers group) and admins review it.

    Only people review: an agent's service identity is not a user and never passes.
    """
    if not isinstance(user, AbstractBaseUser) or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    groups = reviewer_groups(user)
    return change.review_group in groups or "reviewers" in groups


def check_reviewable(user, change: Change) -> None:
    """Raise NotAllowed (saying why) when the person may not decide `change`, ChangeMoved when it no longer waits."""
    if not can_review(user, change):
        raise NotAllowed(f"You are not in the {change.review_group or 'reviewers'} group that reviews this change.")
    if change.status not in WAITING:
        # Someone decided it between the page load and the click.
        raise lifecycle.ChangeMoved(change, change.status)


def _locked(change: Change) -> Change:
    # Read the change again inside the decision's transaction, locked on PostgreSQL
    # (SQLite's IMMEDIATE transaction already holds the write lock): concurrent
    # approvals of one change are counted one after the other, never both as "1 of 2".
    queryset = Change.objects.select_related("workflow", "agent").select_for_update(of=("self",))
    return queryset.get(pk=change.pk)


def approve_change(*, change: Change, user, values: dict | None = None) -> Change:
    """A person approves, optionally with corrected `values`. Once the change has the approvals
    it needs, from as many different people, it is queued and a worker applies it."""
    return _approve(change, user, values, queued=None)


def _approve(change: Change, user, values: dict | None, queued: list[int] | None) -> Change:
    try:
        with transaction.atomic():
            change = _locked(change)
            check_reviewable(user, change)
            actor = Actor.person(user)
            edited = _edit(change, user, values) if values is not None else None
            count = _record_approval(change, user, edited)
            required = max(change.approvals_required, 1)
            if count < required:
                _approval_event(change, actor, f"approved change {change.pk} ({count} of {required} approvals)")
                return change
            fields = {"approver": user, "decided_at": timezone.now()}
            reason = f"{count} of {required} approvals." if required > 1 else ""
            if change.status == S.CONFLICT:
                # The reviewer decided on the record as it is now: that is the new expected state.
                fields["expected"] = _current_expected(change)
                reason = (reason + " Approved again on the record as it is now.").strip()
            lifecycle.transition(change, S.APPROVED, actor=actor, reason=reason, **fields)
            _queue(change, actor=actor, queued=queued)
    except IntegrityError:
        # The same person clicked twice at once (databases without row locks get here).
        raise NotAllowed("You already approved this change; it needs another reviewer.") from None
    return change


def _record_approval(change: Change, user, edited: dict | None) -> int:
    """Add (or renew) the user's approval; returns how many approvals now count."""
    approvals = list(change.approvals.all())
    mine = next((a for a in approvals if a.reviewer_id == user.pk), None)
    if mine is not None and mine in change.current_approvals(approvals):
        raise NotAllowed("You already approved this change; it needs another reviewer.")
    fields = {"approved_values": change.values_to_apply(), "edited_values": edited, "round": change.updated_at}
    if mine is None:
        approvals.append(Approval.objects.create(change=change, reviewer=user, **fields))
    else:
        # Approved an earlier version or round: this approval replaces it (still one per person).
        for name, value in fields.items():
            setattr(mine, name, value)
        mine.created_at = timezone.now()
        mine.save(update_fields=[*fields, "created_at"])
    return len(change.current_approvals(approvals))


def _edit(change: Change, user, values: dict) -> dict | None:
    """Keep a reviewer's correction beside the agent's proposal; returns it, or None if nothing changed."""
    rtype = registry.get(change.record_type)
    unknown = [name for name in values if name not in change.values]
    if unknown:
        raise InvalidEdit({name: "the agent did not propose to change this" for name in unknown})
    try:
        corrected = {**change.values_to_apply(), **rtype.clean_values(values)}
    except registry.KeyedInvalid as exc:
        raise InvalidEdit({exc.key: str(exc)}) from None
    before = change.values_to_apply()
    if corrected == before:
        return None
    # Correcting back to exactly what the agent proposed is no correction at all.
    kept = None if corrected == change.values else corrected
    Change.objects.filter(pk=change.pk).update(edited_values=kept, edited_by=user if kept is not None else None)
    change.edited_values, change.edited_by = kept, (user if kept is not None else None)
    words = "; ".join(
        f"{rtype.fields[n].label}: the agent proposed {rtype.display(n, change.values.get(n))}, "
        f"{user.get_username()} set {rtype.display(n, corrected[n])}"
        for n in corrected
        if corrected[n] != before.get(n)
    )
    _approval_event(
        change,
        Actor.person(user),
        f"corrected change {change.pk} before approving: {words}",
        kind=Event.Kind.CHANGE_EDITED,
        details={"agent": change.values, "before": before, "reviewer": corrected},
    )
    return corrected


def _approval_event(change: Change, actor: Actor, message: str, *, kind=Event.Kind.CHANGE_APPROVAL, details=None):
    Event.objects.create(
        kind=kind,
        workflow_id=change.workflow_id,
        run_id=change.run_id,
        change_id=change.pk,
        actor=actor.user,
        actor_label=actor.label,
        message=f"{actor.label}: {message}",
        details=details or {},
    )


def reject_change(*, change: Change, user, reason: str) -> Change:
    """A person rejects, with a reason the agent can read. One rejection decides."""
    reason = reason.strip()
    with transaction.atomic():
        change = _locked(change)
        check_reviewable(user, change)
        if not reason:
            raise NotAllowed("Say why you reject the change: the agent reads the reason.")
        lifecycle.transition(
            change,
            S.REJECTED,
            actor=Actor.person(user),
            reason=f"Reason: {reason}",
            approver=user,
            reject_reason=reason,
            decided_at=timezone.now(),
        )
    return change


@dataclass
class BulkOutcome:
    """What a bulk decision did, change by change."""

    decided: list[int] = field(default_factory=list)
    awaiting_more: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    # Those of `skipped` the person may not decide at all (the rest moved on meanwhile).
    not_allowed: list[int] = field(default_factory=list)


def approve_many(*, change_ids: Iterable[int], user) -> BulkOutcome:
    """Approve each change through the same path as one click: one approval per change, four-eyes intact."""
    outcome, queued = BulkOutcome(), []
    for change in Change.objects.filter(pk__in=list(change_ids)).order_by("id"):
        try:
            change = _approve(change, user, None, queued=queued)
        except (NotAllowed, lifecycle.ChangeMoved, lifecycle.IllegalTransition) as exc:
            _skip(outcome, change, exc)
            continue
        (outcome.awaiting_more if change.status in WAITING else outcome.decided).append(change.pk)
    if queued:
        transaction.on_commit(partial(enqueue_apply_soon, queued))
    return outcome


def reject_many(*, change_ids: Iterable[int], user, reason: str) -> BulkOutcome:
    """Reject each change with the same reason, each on its own (one may have been decided meanwhile)."""
    if not reason.strip():
        raise NotAllowed("Say why you reject these changes: the agent reads the reason.")
    outcome = BulkOutcome()
    for change in Change.objects.filter(pk__in=list(change_ids)).order_by("id"):
        try:
            reject_change(change=change, user=user, reason=reason)
        except (NotAllowed, lifecycle.ChangeMoved, lifecycle.IllegalTransition) as exc:
            _skip(outcome, change, exc)
            continue
        outcome.decided.append(change.pk)
    return outcome


def _skip(outcome: BulkOutcome, change: Change, exc: Exception) -> None:
    outcome.skipped[change.pk] = str(exc)
    if isinstance(exc, NotAllowed):
        outcome.not_allowed.append(change.pk)


def _current_expected(change: Change) -> dict:
    rtype = registry.get(change.record_type)
    records = rtype.queryset().in_bulk(change.record_ids)
    names = list(change.values_to_apply())
    return {str(pk): rtype.current_values(records[pk], names) for pk in change.record_ids if pk in records}


def _queue(change: Change, *, actor: Actor, queued: list[int] | None = None) -> None:
    """Queue an approved change (held if its workflow is paused). A bulk decision passes
    `queued` to collect the ids and enqueue them in batches once, instead of one task each."""
    to = S.HELD if change.workflow.is_paused else S.QUEUED
    lifecycle.transition(change, to, actor=actor, enqueued_at=timezone.now() if to == S.QUEUED else None)
    if to == S.QUEUED:
        if queued is not None:
            queued.append(change.pk)
        else:
            transaction.on_commit(partial(enqueue_apply_soon, [change.pk]))


# Applying ---------------------------------------------------------------------


def enqueue_apply_soon(change_ids: list[int]) -> None:
    """Hand queued changes to the workers from this process's publisher thread: a request that
    queued them answers without waiting on the broker (see approvals.broker)."""
    broker.send_soon(partial(enqueue_apply, change_ids))


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
    with _heartbeat(claimed):
        for change in claimed:
            counts[_apply_one(change, worker)] += 1
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
        return _retry_or_fail(change, worker, f"database error: {exc}", guard=mine)


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
        enqueued_at=None,
    )
    return "retry"


# The sweeper -----------------------------------------------------------------


def sweep() -> dict[str, int]:
    """Recover work the broker lost: expired claims are retried (or failed after too
    many attempts) and queued changes nobody picked up are enqueued again."""
    now = timezone.now()
    sweeper = Actor.system("sweeper")
    expired = list(Change.objects.filter(status__in_constants=[S.APPLYING], lease_until__lt=now))
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
        Change.objects.filter(status__in_constants=[S.QUEUED])
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .order_by("enqueued_at")  # longest waiting first, read off the change_queued index
        .values_list("pk", flat=True)[:10_000]
    )
    if waiting:
        Change.objects.filter(pk__in=waiting, status=S.QUEUED).update(enqueued_at=now)
        enqueue_apply(waiting)
    return {"expired": len(expired), "requeued": len(waiting)}
