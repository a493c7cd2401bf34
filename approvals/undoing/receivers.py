"""What approvals does when undo reports back: the changes an undo took back (or a redo put back)."""

from __future__ import annotations

from django.dispatch import receiver

from undo.host import changes_redone, changes_undone, undo_finished, undo_requested

from .. import lifecycle
from ..lifecycle import Actor
from ..models import Change, Event, Run

S = Change.Status


def _actor(user) -> Actor:
    return Actor.person(user) if user is not None else Actor.system("undo")


@receiver(changes_undone)
def mark_undone(sender, *, undo, change_ids, user, **kwargs):
    lifecycle.transition_many(change_ids, S.UNDONE, frm=S.APPLIED, actor=_actor(user), reason=f"Undone by {undo}.")


@receiver(changes_redone)
def mark_redone(sender, *, undo, change_ids, user, **kwargs):
    lifecycle.transition_many(change_ids, S.APPLIED, frm=S.UNDONE, actor=_actor(user), reason=f"Put back by {undo}.")


@receiver(undo_requested)
def record_undo_asked(sender, *, undo, **kwargs):
    _undo_event(undo, f"{undo.requested_by_label} asked for {undo}. {_n(undo.total, 'record')} to check.")


@receiver(undo_finished)
def record_undo_finished(sender, *, undo, **kwargs):
    if undo.status == undo.Status.FAILED:
        _undo_event(undo, f"{undo} failed. {undo.error}")
        return
    left = f", {undo.conflicts_left} left as they are" if undo.conflicts_left else ""
    skipped = f", {undo.skipped_count} skipped" if undo.skipped_count else ""
    _undo_event(
        undo,
        f"{undo} is done. {_n(undo.records_reverted, 'record')} set back{left}{skipped}, "
        f"{_n(len(undo.change_ids_done), 'change')} {'undone' if undo.undoes_changes else 'put back'}.",
    )


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _undo_event(undo, message: str) -> None:
    run = Run.objects.filter(pk=undo.run_id).only("workflow_id").first() if undo.run_id else None
    Event.objects.create(
        kind=Event.Kind.UNDO,
        workflow_id=run.workflow_id if run else None,
        run=run,
        actor=undo.requested_by,
        actor_label=undo.requested_by_label or "someone",
        message=message,
        details={"undo": undo.pk, "kind": undo.kind, "status": undo.status},
    )
