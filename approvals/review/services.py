"""Review decisions: who may review a change, approving (four-eyes, corrected values), rejecting, in bulk.

An approved change is queued here and handed to `approvals.apply` to be written."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from undo import registry

from .. import access, audit, lifecycle
from ..apply.services import enqueue_apply
from ..lifecycle import WAITING, Actor
from ..models import Approval, Change, Event
from ..workflows import auto_pause

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


def check_reviewable(user, change: Change) -> None:
    """Raise NotAllowed (saying why) when the person may not decide `change`, ChangeMoved when it no longer waits."""
    if not access.may_review(user, change):
        raise NotAllowed(access.why_not_reviewer(change))
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
    change = _approve(change, user, values, queued=None)
    if change.status not in WAITING:  # decided, not one approval of several
        auto_pause.check_after_commit([change.workflow_id], auto_pause.AFTER_REVIEW)
    return change


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
                more = required - count
                text = (
                    f"{actor.label}: approved change {change.pk} ({count} of {required} approvals). Next: it waits "
                    f"for {more} more approval{'s' if more > 1 else ''} from another reviewer"
                    f"{f' in {change.review_group}' if change.review_group else ''}."
                )
                audit.write([audit.Entry.about(change, Event.Kind.APPROVED, actor, text)])
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
    actor = Actor.person(user)
    text = (
        f"{actor.label}: corrected change {change.pk} before approving: {words}. "
        "Next: it is applied with these values once approved; the agent's proposal is kept beside them."
    )
    details = {"agent": change.values, "before": before, "reviewer": corrected}
    audit.write([audit.Entry.about(change, Event.Kind.CORRECTED, actor, text, details=details)])
    return corrected


def reject_change(*, change: Change, user, reason: str) -> Change:
    """A person rejects, with a reason the agent can read. One rejection decides."""
    change = _reject(change, user, reason)
    auto_pause.check_after_commit([change.workflow_id], auto_pause.AFTER_REVIEW)
    return change


def _reject(change: Change, user, reason: str) -> Change:
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
    outcome, queued, decided = BulkOutcome(), [], []
    # One transaction, so the workers' batch is recorded with the approvals (each is its own savepoint).
    with transaction.atomic():
        for change in Change.objects.filter(pk__in=list(change_ids)).order_by("id"):
            try:
                change = _approve(change, user, None, queued=queued)
            except (NotAllowed, lifecycle.ChangeMoved, lifecycle.IllegalTransition) as exc:
                _skip(outcome, change, exc)
                continue
            if change.status in WAITING:
                outcome.awaiting_more.append(change.pk)
            else:
                outcome.decided.append(change.pk)
                decided.append(change)
        if queued:
            enqueue_apply(queued)
        # Once for the bulk decision, not per change.
        auto_pause.check_after_commit({c.workflow_id for c in decided}, auto_pause.AFTER_REVIEW)
    return outcome


def reject_many(*, change_ids: Iterable[int], user, reason: str) -> BulkOutcome:
    """Reject each change with the same reason, each on its own (one may have been decided meanwhile)."""
    if not reason.strip():
        raise NotAllowed("Say why you reject these changes: the agent reads the reason.")
    outcome, workflow_ids = BulkOutcome(), set()
    for change in Change.objects.filter(pk__in=list(change_ids)).order_by("id"):
        try:
            _reject(change, user, reason)
        except (NotAllowed, lifecycle.ChangeMoved, lifecycle.IllegalTransition) as exc:
            _skip(outcome, change, exc)
            continue
        outcome.decided.append(change.pk)
        workflow_ids.add(change.workflow_id)
    # Once for the bulk decision, not per change (each rejection committed on its own above).
    auto_pause.check_after_commit(workflow_ids, auto_pause.AFTER_REVIEW)
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
            enqueue_apply([change.pk])
