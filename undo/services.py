"""Undoing: who may, asking for an undo, and running it (inline or on a worker).

An undo runs chunk by chunk; each chunk (whole changes only) is one transaction
that writes the records, their history rows, the undo's progress and, through
`undo.host`, the changes' new status. Running an undo again (a worker died,
or the task was delivered twice) finishes it without writing anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import host, registry, revert, write
from .chunks import Chunk, chunks_of
from .host import changes_redone, changes_undone, undo_finished, undo_requested
from .models import Undo
from .preview import describe_plans
from .revert import no_gc_pauses
from .scopes import NothingToUndo, Scope
from .selectors import UndoneChanges, chain_of, extent, redo_targets

logger = logging.getLogger(__name__)

EXECUTE_TASK = "undo.tasks.execute_undo_task"
CONFLICTS_KEPT = 200
CHANGED_SINCE_PREVIEW = (
    "Not forced: it was changed again after your preview, and an undo never overwrites an edit you have "
    "not seen. Undo again to see it, then force it if you still want to."
)


class UndoRefused(Exception):
    """The undo cannot be done now; the message says why and what to do, in plain words."""


class NotAllowed(UndoRefused):
    """The person may not undo these records."""


# Who may undo ------------------------------------------------------------------


def may_undo(user, record_types: Iterable[str]) -> bool:
    """The host's answer (`host.set_access`); without a host, owner groups and admins."""
    return host.may_undo(user, record_types)


def check_may_undo(user, record_types: Iterable[str]) -> None:
    """Raise NotAllowed, naming the owner groups, unless the user may undo these record types."""
    record_types = sorted(set(record_types))
    if not may_undo(user, record_types):
        raise NotAllowed(not_allowed_message(record_types))


def not_allowed_message(record_types: Iterable[str]) -> str:
    """Why someone may not undo changes to these record types, and whom to ask."""
    record_types = sorted(set(record_types))
    owners = sorted({registry.get(n).owner_group for n in record_types})
    labels = ", ".join(registry.get(n).label + "s" for n in record_types)
    return (
        f"Only the owners of these records ({' and '.join(owners)}) and admins may undo changes to {labels}. "
        "Ask one of them, or an admin."
    )


# Asking for an undo --------------------------------------------------------------


def request_undo(
    *,
    scope: Scope,
    description: str,
    user,
    forced: Iterable[str] = (),
    skipped: Iterable[str] = (),
    seen: Mapping[str, int] | None = None,
    kind: str = Undo.Kind.UNDO,
    authorise: Callable[[Any, list[str]], None] = check_may_undo,
) -> Undo:
    """Check, record and start an undo: inline when small, on a worker when large.

    `forced` and `skipped` are the owner's choices per record ("ticket:12"): overwrite its
    conflicts, or leave it exactly as it is (skip wins when both are given). `seen` (from the
    preview): per record type the newest history id the owner saw; nothing written after it is
    undone, and no edit after it is forced over. `authorise(user, record_types)` raises NotAllowed
    unless the user may undo the record types the scope reaches: undo's own rule, unless the host
    that asks answers that itself.

    Raises NotAllowed, NothingToUndo, or UndoRefused (an undo of the same scope is running).
    """
    if seen:
        # Only what the preview showed: nothing written since, of any type, is undone unseen.
        scope = replace(scope, seen=tuple(sorted(seen.items())))
    reach = extent(scope)
    if not reach.records:
        raise NothingToUndo(f"Nothing to undo: no record was changed by {description}.")
    authorise(user, reach.record_types)
    fields = scope.undo_fields()
    with transaction.atomic():
        running = Undo.objects.filter(
            scope_key=fields["scope_key"], status__in=(Undo.Status.QUEUED, Undo.Status.RUNNING)
        ).first()
        if running is not None:
            raise UndoRefused(
                f"{running} is already {running.get_status_display()} (asked by {running.requested_by_label}). "
                "Wait for it to finish: its page shows the progress."
            )
        undo = Undo.objects.create(
            **fields,
            kind=kind,
            description=description[:500],
            record_types=reach.record_types,
            forced=sorted(set(forced)),
            skipped=sorted(set(skipped)),
            requested_by=user,
            requested_by_label=user.get_username(),
            total=reach.records,
        )
        undo_requested.send(sender=Undo, undo=undo)
        _hand_to_a_worker_if_large(undo)
    _run_now_if_small(undo)
    undo.refresh_from_db()
    return undo


def request_redo(
    *, undo: Undo, user, forced: Iterable[str] = (), skipped: Iterable[str] = (), seen: Mapping[str, int] | None = None
) -> Undo:
    """Undo an undo: put back what it took back."""
    if not undo.is_finished:
        raise UndoRefused(f"{undo} is still {undo.get_status_display()}. Wait for it to finish, then redo it.")
    return request_undo(
        scope=redo_scope(undo),
        description=redo_description(undo),
        user=user,
        forced=forced,
        skipped=skipped,
        seen=seen,
        kind=Undo.Kind.REDO,
    )


def redo_scope(undo: Undo) -> Scope:
    return Scope(undo_id=undo.pk)


def redo_description(undo: Undo) -> str:
    """'what undo #4 took back (run r-1 …)'; for a redo, what it put back, named by the first undo's scope."""
    first = undo
    while first.target_id is not None:
        first = first.target
    verb = "took back" if undo.undoes_changes else "put back"
    return f"what {undo.get_kind_display()} #{undo.pk} {verb} ({first.description})"


def restore_scope(*, record_type: str, record_id: int, history_id: int, upto_history_id: int) -> Scope:
    """Every write to one record after version `history_id`, up to the newest one the owner saw."""
    return Scope(
        record_type=record_type,
        record_id=record_id,
        after_history_id=history_id,
        upto_history_id=upto_history_id,
    )


def runs_in_request(undo: Undo) -> bool:
    """Small undos run at once, in the request that asks; larger ones on a worker."""
    return undo.total <= settings.UNDO_INLINE_MAX_RECORDS


def _hand_to_a_worker_if_large(undo: Undo) -> None:
    # In the transaction that queues the undo: the worker's task is recorded with it.
    if not runs_in_request(undo):
        host.dispatch(EXECUTE_TASK, [undo.pk])


def _run_now_if_small(undo: Undo) -> None:
    if runs_in_request(undo):
        execute_undo(undo_id=undo.pk)


# Running an undo -----------------------------------------------------------------


def execute_undo(*, undo_id: int) -> Undo | None:
    """Run the undo chunk by chunk; returns it, or None when another worker holds it or it is done.

    Idempotent: what an earlier attempt wrote is "already back" and is not written again.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.UNDO_LEASE_SECONDS)
    claimable = Q(status=Undo.Status.QUEUED) | Q(status=Undo.Status.RUNNING, lease_until__lt=now)
    # Each attempt checks every record again: what it finds is counted afresh; what an
    # earlier attempt wrote (records_reverted, change_ids_done) stays counted.
    claimed = Undo.objects.filter(claimable, pk=undo_id).update(
        status=Undo.Status.RUNNING,
        lease_until=now + lease,
        done=0,
        already_back=0,
        conflicts_left=0,
        skipped_count=0,
        conflicts=[],
        error="",
    )
    if not claimed:
        _look_again_when_the_lease_ends(undo_id)
        return None
    undo = Undo.objects.select_related("requested_by", "target").get(pk=undo_id)
    undo.attempts += 1
    undo.started_at = undo.started_at or now
    scope = Scope.of(undo)
    chain = chain_of(undo.scope_key, undo_id=undo.pk)
    redos = redo_targets()
    candidates = frozenset(undo.target.change_ids_done) if undo.target_id else None
    # For an undo of changes: which of them were undone already (by this undo's earlier attempt too).
    undone = None if undo.target_id else UndoneChanges()
    reason = f"{undo.get_kind_display()} #{undo.pk} by {undo.requested_by_label}: {undo.description}"[:2000]
    signal = changes_undone if undo.undoes_changes else changes_redone
    try:
        total, chunks = chunks_of(scope, size=settings.UNDO_BATCH_SIZE)
        undo.total = total
        undo.save(update_fields=["attempts", "started_at", "total"])
        for chunk in chunks:
            with transaction.atomic(), no_gc_pauses():
                _run_chunk(
                    undo,
                    chunk,
                    chain=chain,
                    candidates=candidates,
                    redos=redos,
                    undone=undone,
                    reason=reason,
                    signal=signal,
                )
    except Exception as exc:
        logger.exception("undo %s failed", undo.pk)
        # The chunk that failed rolled back: count only what was committed.
        undo.refresh_from_db()
        undo.error = (
            f"The undo stopped after {undo.done} of {undo.total} records: {exc}. "
            "What it undid so far stays undone (each change all or nothing). Run it again to finish."
        )
        return _finish(undo, Undo.Status.FAILED)
    return _finish(undo, Undo.Status.DONE)


def _look_again_when_the_lease_ends(undo_id: int) -> None:
    """Another worker runs the undo, or did and died: if it still holds it, try again when its
    lease ends (a dead worker's undo is then finished; a live one's is done by then)."""
    lease_until = Undo.objects.filter(pk=undo_id, status=Undo.Status.RUNNING).values_list("lease_until", flat=True)
    for until in lease_until:
        host.dispatch(EXECUTE_TASK, [undo_id], not_before=until + timedelta(seconds=1))


def _finish(undo: Undo, status: str) -> Undo:
    with transaction.atomic():
        undo.status = status
        undo.finished_at = timezone.now()
        undo.lease_until = None
        undo.save(update_fields=["status", "error", "finished_at", "lease_until"])
        undo_finished.send(sender=Undo, undo=undo)
    return undo


def _run_chunk(undo: Undo, chunk: Chunk, *, chain, candidates, redos, undone, reason: str, signal) -> None:
    plans = revert.plan_chunk(
        chunk,
        chain=chain,
        forced=frozenset(undo.forced),
        skipped=frozenset(undo.skipped),
        seen=undo.seen_history.get(chunk.table.rtype.name),
        candidates=candidates,
        redos=redos,
        undone=undone,
        lock=True,
    )
    written = write.write_chunk(
        plans,
        undo_id=undo.pk,
        user_id=undo.requested_by_id,
        deleted_by=undo.requested_by_label,
        reason=reason,
    )
    skipped, left, already = [], [], 0
    for p in plans:
        if p.skipped:
            skipped.append(p)
        elif p.stays_in_part:
            left.append(p)
        elif not p.reverts and not p.conflicts and p.last_undo_id != undo.pk:
            # Nothing to write, and not because this undo wrote it (an earlier attempt did).
            already += 1
    done_changes = revert.changes_taken_back(plans)
    undo.done += len(plans)
    undo.records_reverted += written.records
    undo.fields_reverted += written.fields
    undo.forced_count += written.forced
    undo.already_back += already
    undo.conflicts_left += len(left)
    undo.skipped_count += len(skipped)
    room = CONFLICTS_KEPT - len(undo.conflicts)
    if room > 0 and (left or skipped):
        for item in describe_plans((left + skipped)[:room]):
            if item.skipped:
                lines = ["Skipped, as asked: left exactly as it is.", *item.conflicts]
                lines += [f"not set back: {line}" for line in item.lines]
            else:
                lines = [*item.conflicts, *item.held, *([item.cannot] if item.cannot else [])]
                if item.changed_since_preview:
                    lines.insert(0, CHANGED_SINCE_PREVIEW)
            undo.conflicts.append({"key": item.key, "label": item.label, "url": item.url, "lines": lines})
    new_changes = sorted(done_changes - set(undo.change_ids_done)) if undo.attempts > 1 else sorted(done_changes)
    undo.change_ids_done.extend(new_changes)
    undo.lease_until = timezone.now() + timedelta(seconds=settings.UNDO_LEASE_SECONDS)
    undo.save(
        update_fields=[
            "done",
            "records_reverted",
            "fields_reverted",
            "forced_count",
            "already_back",
            "conflicts_left",
            "skipped_count",
            "conflicts",
            "change_ids_done",
            "lease_until",
        ]
    )
    if done_changes:
        signal.send(sender=Undo, undo=undo, change_ids=sorted(done_changes), user=undo.requested_by)


def retry_undo(*, undo: Undo, user) -> Undo:
    """Run a failed undo again: it finishes what is left, writing nothing twice."""
    check_may_undo(user, undo.record_types)
    if undo.status != Undo.Status.FAILED:
        raise UndoRefused(f"{undo} is {undo.get_status_display()}; only a failed undo is run again.")
    with transaction.atomic():
        Undo.objects.filter(pk=undo.pk, status=Undo.Status.FAILED).update(status=Undo.Status.QUEUED)
        undo.refresh_from_db()
        _hand_to_a_worker_if_large(undo)
    _run_now_if_small(undo)
    undo.refresh_from_db()
    return undo
