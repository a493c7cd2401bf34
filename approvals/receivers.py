"""What approvals does when undo reports back: the changes an undo took back (or a redo put back)."""

from __future__ import annotations

from django.dispatch import receiver

from undo.signals import changes_redone, changes_undone

from . import lifecycle
from .lifecycle import Actor
from .models import Change

S = Change.Status


def _actor(user) -> Actor:
    return Actor.person(user) if user is not None else Actor.system("undo")


@receiver(changes_undone)
def mark_undone(sender, *, undo, change_ids, user, **kwargs):
    lifecycle.transition_many(change_ids, S.UNDONE, frm=S.APPLIED, actor=_actor(user), reason=f"Undone by {undo}.")


@receiver(changes_redone)
def mark_redone(sender, *, undo, change_ids, user, **kwargs):
    lifecycle.transition_many(change_ids, S.APPLIED, frm=S.UNDONE, actor=_actor(user), reason=f"Put back by {undo}.")
