"""The lifecycle of a change: the only code that sets `Change.status`.

Allowed moves are in `ALLOWED`, each with the kind of audit event it writes, and the status
groups (`WAITING`, `IN_FLIGHT`, `WRITTEN`) beside it. Every move is a compare-and-set on the
current status (so two reviewers, or two workers, can never both move the same change) and
writes its event (`audit.write`) in the same transaction, saying who moved it, why and what
happens next; a move the agent waits to hear of (a decision, applied, failed, conflict, undone:
`callbacks.OUTCOMES`) also records a callback delivery there, so the agent is told exactly
the moves that happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from . import audit
from .agents import callbacks
from .audit import Actor
from .models import Change, ChangeTarget, Event, Workflow

S = Change.Status
K = Event.Kind

# From each status, the moves allowed and the kind of the event each writes.
ALLOWED: dict[str, dict[str, str]] = {
    S.PROPOSED: {S.AUTO_APPROVED: K.PROPOSED, S.PENDING_REVIEW: K.PROPOSED, S.REFUSED: K.PROPOSED},
    S.AUTO_APPROVED: {S.QUEUED: K.QUEUED, S.HELD: K.HELD},
    S.PENDING_REVIEW: {S.APPROVED: K.APPROVED, S.REJECTED: K.REJECTED},
    S.APPROVED: {S.QUEUED: K.QUEUED, S.HELD: K.HELD},
    # Resuming the workflow routes a held change again: a person's approval stands (queued);
    # one the rules approved goes where the rules send it now.
    S.HELD: {S.QUEUED: K.ROUTED, S.PENDING_REVIEW: K.ROUTED, S.REFUSED: K.ROUTED},
    S.QUEUED: {S.APPLYING: K.CLAIMED, S.HELD: K.HELD},
    # Back to queued: the attempt failed in a way another attempt may fix. Held: its workflow
    # was paused after the claim, before the worker began writing it.
    S.APPLYING: {
        S.APPLIED: K.APPLIED,
        S.FAILED: K.FAILED,
        S.CONFLICT: K.CONFLICT,
        S.QUEUED: K.RETRY,
        S.HELD: K.HELD,
    },
    # A conflict goes back to a person: approve again (on the record as it is now) or reject.
    S.CONFLICT: {S.APPROVED: K.APPROVED, S.REJECTED: K.REJECTED},
    S.APPLIED: {S.UNDONE: K.UNDONE},
    S.FAILED: {S.QUEUED: K.QUEUED},
    # undone → applied is a redo: the undo was itself undone, so the change's writes
    # are in effect again (written back from history, not applied anew, so no queue).
    S.UNDONE: {S.QUEUED: K.QUEUED, S.APPLIED: K.REDONE},
    S.REJECTED: {},
    S.REFUSED: {},
}

# What happens next, by the status a change moved to: the last sentence of its event.
_NEXT = {
    S.AUTO_APPROVED: "Next: it is queued for a worker.",
    S.PENDING_REVIEW: "Next: {reviewer} approves or rejects it{approvals}.",
    S.REFUSED: "Nothing more happens to it.",
    S.APPROVED: "Next: it is queued for a worker, unless its workflow is paused.",
    S.REJECTED: "Nothing more happens to it; the agent can read the reason.",
    S.HELD: "Next: it waits until its workflow is resumed.",
    S.QUEUED: "Next: a worker applies it.",
    S.APPLYING: "Next: the worker writes it if the records are as the agent expected.",
    S.APPLIED: "Nothing more happens unless someone undoes it.",
    S.FAILED: "Nothing retries it now.",
    S.CONFLICT: "Next: {reviewer} approves it again on the record as it is now, or rejects it.",
    S.UNDONE: "Nothing more happens unless the undo is itself undone.",
}

# Status groups, named for the question each answers.
# Waiting for a person to decide (a conflict goes back to review).
WAITING = (S.PENDING_REVIEW, S.CONFLICT)
# On the way to the records: decided, not written yet (an undo now would race them).
IN_FLIGHT = (S.AUTO_APPROVED, S.APPROVED, S.QUEUED, S.APPLYING)
# Wrote its records (an undone change too): it reads as what it wrote, from its history rows.
WRITTEN = (S.APPLIED, S.UNDONE)
# Already ran: written (an undone change too), or tried and failed (a workflow page's pause list).
RAN = (S.APPLIED, S.UNDONE, S.FAILED)
# Will not run: a person rejected it or the rules refused it.
STOPPED = (S.REJECTED, S.REFUSED)

# Where routing sends a fresh proposal, step by step.
_ADMIT_PATHS = {
    Change.Decision.AUTO_APPLY: (S.AUTO_APPROVED, S.QUEUED),
    Change.Decision.REVIEW: (S.PENDING_REVIEW,),
    Change.Decision.REFUSE: (S.REFUSED,),
}


class IllegalTransition(Exception):
    """A move the lifecycle does not allow (a bug in the caller, or a stale page)."""


class ChangeMoved(Exception):
    """Someone else moved the change first; `current` is its status now."""

    def __init__(self, change: Change, current: str):
        self.change = change
        self.current = current
        super().__init__(f"Change {change.pk} is already {S(current).label}; nothing was done.")


def check(frm: str, to: str) -> None:
    if to not in ALLOWED[frm]:
        raise IllegalTransition(f"a change cannot go from {S(frm).label} to {S(to).label}")


def _after_id(frm: str, to: str, reason: str, next_step: str) -> str:
    """What a move's text says after "sam: change 12": " waiting for review → approved. 2 of 2
    approvals. Next: it is queued …" (the move, why, what happens next)."""
    reason = reason.strip()
    if reason and not reason.endswith((".", "!", "?")):
        reason += "."
    return "".join(f" {part}" for part in (f"{S(frm).label} → {S(to).label}.", reason, next_step) if part)


def _next_step(to: str, change: Change | None = None) -> str:
    group = change.review_group if change is not None else ""
    needed = change.approvals_required if change is not None else 1
    return _NEXT.get(to, "").format(
        reviewer=f"a reviewer in {group}" if group else "a reviewer",
        approvals=f" ({needed} approvals needed, from different people)" if needed > 1 else "",
    )


def _move(change: Change, frm: str, to: str, actor: Actor, reason: str, now, who: str = "") -> audit.Entry:
    text = f"{who or actor.label}: change {change.pk}{_after_id(frm, to, reason, _next_step(to, change))}"
    return audit.Entry.about(change, ALLOWED[frm][to], actor, text, from_status=frm, to_status=to, at=now)


def transition(
    change: Change, to: str, *, actor: Actor, reason: str = "", guard: dict | None = None, **fields
) -> Change:
    """Move `change` to `to`, saving `fields` with it, and write the event.

    Raises IllegalTransition for a move the table forbids and ChangeMoved when the
    change is no longer in the status (or `guard` values) the caller saw.
    """
    frm = change.status
    check(frm, to)
    now = timezone.now()
    with transaction.atomic():
        updated = Change.objects.filter(pk=change.pk, status=frm, **(guard or {})).update(
            status=to, updated_at=now, **fields
        )
        if updated != 1:
            current = Change.objects.filter(pk=change.pk).values_list("status", flat=True).first()
            raise ChangeMoved(change, current or frm)
        change.status = to
        change.updated_at = now
        for name, value in fields.items():
            setattr(change, name, value)
        audit.write([_move(change, frm, to, actor, reason, now)])
        outcome = callbacks.outcome_of(frm, to)
        if outcome is not None:
            callbacks.announce(change, outcome=outcome)
    return change


def transition_many(change_ids: Iterable[int], to: str, *, frm: str, actor: Actor, reason: str = "") -> list[int]:
    """Move every change among `change_ids` that is `frm` now to `to`, with one event each.

    For thousands at once (an undo of a run): per batch one read under lock, one UPDATE
    and one multi-row insert of events. Changes in another status are left alone (they
    moved already, or never got there), so calling it twice moves nothing more.
    Returns the ids moved.
    """
    check(frm, to)
    ids = list(change_ids)
    moved: list[int] = []
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, len(ids), _MANY_BATCH):
            # The statuses are read under a lock (PostgreSQL locks these rows; on SQLite the
            # IMMEDIATE transaction holds the database's write lock), so the UPDATE of exactly
            # these rows below is the compare-and-set. The status is compared here, not in SQL:
            # `WHERE id IN (…) AND status = …` makes SQLite's planner walk the status index
            # (measured: ~10x slower for 5,000 ids).
            batch = [pk for pk, status in _read_statuses(ids[start : start + _MANY_BATCH]) if status == frm]
            if not batch:
                continue
            _write_statuses(batch, to=to, now=now)
            # One entry for the batch: the writer makes each change's event from the change's row.
            text = f"{actor.label}: change {audit.CHANGE_ID}{_after_id(frm, to, reason, _next_step(to))}"
            audit.write(
                [audit.Entry(ALLOWED[frm][to], actor, text, from_status=frm, to_status=to, at=now, change_ids=batch)]
            )
            moved.extend(batch)
        outcome = callbacks.outcome_of(frm, to)
        if outcome is not None and moved:
            callbacks.announce_many(moved, outcome=outcome)
    return moved


_MANY_BATCH = 5000


def _read_statuses(ids: list[int]) -> list[tuple[int, str]]:
    # Plain SQL: the ORM's `pk__in` prepares every id one by one (~4 µs each, 40 ms for 10,000).
    qn = connection.ops.quote_name
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = "SELECT {}, {} FROM {} WHERE {} IN ({}){}".format(
        qn("id"),
        qn("status"),
        qn(Change._meta.db_table),
        qn("id"),
        ", ".join(["%s"] * len(ids)),
        lock,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return cursor.fetchall()


def _write_statuses(ids: list[int], *, to: str, now) -> None:
    qn = connection.ops.quote_name
    sql = "UPDATE {} SET {} = %s, {} = %s WHERE {} IN ({})".format(
        qn(Change._meta.db_table), qn("status"), qn("updated_at"), qn("id"), ", ".join(["%s"] * len(ids))
    )
    updated_at = Change._meta.get_field("updated_at").get_db_prep_save(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [to, updated_at, *ids])


def admit(changes: list[Change], *, actor: Actor, paused: bool, now=None) -> list[Change]:
    """Store fresh proposals, already routed (`decision` set), in the status routing leads to.

    A change to auto-apply goes on to `queued`, or to `held` when its workflow is paused.
    Writes one event per step; returns the stored changes.
    """
    now = now or timezone.now()
    events: list[tuple[Change, str, str, str]] = []
    for change in changes:
        path = list(_ADMIT_PATHS[change.decision])
        if paused and path[-1] == S.QUEUED:
            path[-1] = S.HELD
        frm = S.PROPOSED
        steps = []
        for to in path:
            check(frm, to)
            steps.append((frm, to))
            frm = to
        change.status = frm
        change.created_at = change.updated_at = now
        if frm == S.QUEUED:
            change.enqueued_at = now
        events.extend((change, a, b, change.decision_explanation if i == 0 else "") for i, (a, b) in enumerate(steps))
    with transaction.atomic():
        Change.objects.bulk_create(changes)
        # Indexed (record type, id) rows: the review queue finds changes waiting on the same record.
        ChangeTarget.objects.bulk_create(ChangeTarget.of(changes))
        # The first event says which agent and run proposed the change.
        audit.write(
            _move(
                c, a, b, actor, reason, now, who=f"{actor.label} (run {c.run.external_id})" if a == S.PROPOSED else ""
            )
            for c, a, b, reason in events
        )
    return changes


def claim(change_ids: Iterable[int], *, lease_seconds: int, actor: Actor) -> list[Change]:
    """Claim queued changes for applying: queued → applying, one more attempt, a lease.

    The claim is a conditional UPDATE on `status = queued`: of two workers given the
    same ids, each change goes to exactly one of them (on any database).
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        candidates = Change.objects.filter(pk__in=list(change_ids), status=S.QUEUED)
        if connection.features.has_select_for_update_skip_locked:
            # PostgreSQL: rows another worker is claiming right now are skipped, not waited on.
            candidates = candidates.select_for_update(skip_locked=True)
        rows = list(candidates.values_list("pk", "workflow_id"))
        # The kill switch, in the claim's own transaction: a change of a paused workflow is held,
        # never claimed, however long its task waited in the broker.
        paused = paused_workflows({workflow_id for _, workflow_id in rows})
        if paused:
            transition_many(
                [pk for pk, workflow_id in rows if workflow_id in paused],
                S.HELD,
                frm=S.QUEUED,
                actor=actor,
                reason="Its workflow is paused, so no worker starts it.",
            )
        ids = [pk for pk, workflow_id in rows if workflow_id not in paused]
        if not ids:
            return []
        Change.objects.filter(pk__in=ids, status=S.QUEUED).update(
            status=S.APPLYING, lease_until=lease_until, updated_at=now, attempts=F("attempts") + 1
        )
        # Ours are the rows this UPDATE moved: same status, same lease, same instant.
        claimed = list(
            Change.objects.filter(pk__in=ids, status=S.APPLYING, lease_until=lease_until, updated_at=now)
            .select_related("agent", "approver", "workflow", "run")
            .order_by("id")
        )
        audit.write(_move(c, S.QUEUED, S.APPLYING, actor, f"Attempt {c.attempts}.", now) for c in claimed)
    return claimed


def paused_workflows(workflow_ids: Iterable[int]) -> set[int]:
    """Which of these workflows are paused, read in the caller's transaction. On PostgreSQL the rows
    are locked FOR SHARE, so a pause being written (FOR UPDATE) is waited for, and read once
    committed; on SQLite the IMMEDIATE transaction already excludes a concurrent pause."""
    ids = sorted(workflow_ids)
    if not ids:
        return set()
    qn = connection.ops.quote_name
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    sql = "SELECT {}, {} FROM {} WHERE {} IN ({}){}".format(
        qn("id"), qn("state"), qn(Workflow._meta.db_table), qn("id"), ", ".join(["%s"] * len(ids)), lock
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {pk for pk, state in cursor.fetchall() if state == Workflow.State.PAUSED}


def renew(changes: Iterable[Change], *, lease_seconds: int) -> int:
    """Extend the lease of claimed changes still applying under the attempt that claimed them
    (a live worker's heartbeat); returns how many were renewed. A change the sweeper took back,
    or another worker claimed since, has another status or attempt and is left alone."""
    until = timezone.now() + timedelta(seconds=lease_seconds)
    by_attempt: dict[int, list[int]] = {}
    for change in changes:
        by_attempt.setdefault(change.attempts, []).append(change.pk)
    renewed = 0
    for attempts, ids in by_attempt.items():
        renewed += Change.objects.filter(pk__in=ids, status=S.APPLYING, attempts=attempts).update(lease_until=until)
    return renewed
