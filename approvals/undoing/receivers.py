"""What approvals does when undo reports back: the changes an undo took back (or a redo put back)."""

from __future__ import annotations

from django.dispatch import receiver

from undo.host import changes_redone, changes_undone, undo_finished, undo_requested

from .. import audit, lifecycle
from ..lifecycle import Actor
from ..models import Change, Event, Run
from ..workflows import auto_pause

S = Change.Status
K = Event.Kind
# The event of a finished undo, by its kind: an undo, a redo (an undo undone), a record restored.
_FINISHED = {"undo": K.UNDONE, "redo": K.REDONE, "restore": K.RESTORED}


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
    _undo_event(
        undo,
        K.UNDO_REQUESTED,
        f"{undo.requested_by_label} asked for {undo}. {_n(undo.total, 'record')} to check. "
        "Next: each is set back; one changed since by someone else is left as it is, unless the owner chose "
        "to overwrite it.",
    )


@receiver(undo_finished)
def record_undo_finished(sender, *, undo, **kwargs):
    if undo.status == undo.Status.FAILED:
        _undo_event(undo, K.FAILED, f"{undo} failed. {undo.error}")
        return
    left = f", {undo.conflicts_left} left as they are" if undo.conflicts_left else ""
    skipped = f", {undo.skipped_count} skipped" if undo.skipped_count else ""
    _undo_event(
        undo,
        _FINISHED[undo.kind],
        f"{undo} is done. {_n(undo.records_reverted, 'record')} set back{left}{skipped}, "
        f"{_n(len(undo.change_ids_done), 'change')} {'undone' if undo.undoes_changes else 'put back'}. "
        "Nothing more happens unless it is itself undone.",
    )
    if undo.undoes_changes and undo.change_ids_done:
        # Once per undo, when it has finished (not per chunk), for the workflows it took changes
        # back from: a run's undo is of its run's workflow; a record restored may span several.
        if undo.run_id:
            workflow_ids = Run.objects.filter(pk=undo.run_id).values_list("workflow_id", flat=True)
        else:
            workflow_ids = Change.objects.filter(pk__in=undo.change_ids_done).values_list("workflow_id", flat=True)
        auto_pause.check_after_commit(set(workflow_ids), auto_pause.AFTER_UNDO)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _undo_event(undo, kind: str, text: str) -> None:
    # Sent by undo inside the transaction that records the undo's request or its end.
    run = Run.objects.filter(pk=undo.run_id).only("workflow_id").first() if undo.run_id else None
    actor = audit.Actor(label=undo.requested_by_label or "someone", user=undo.requested_by)
    audit.write(
        [
            audit.Entry(
                kind,
                actor,
                text,
                workflow_id=run.workflow_id if run else None,
                run_id=run.pk if run else None,
                details={"undo": undo.pk, "kind": undo.kind, "status": undo.status},
            )
        ]
    )
