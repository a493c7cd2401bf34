"""An undo's scope has one mapping to the Undo that holds it: stored and read back, it is the same scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields, replace

import pytest
from django.utils import timezone

from undo.models import Undo
from undo.scopes import Scope

SINCE = dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.UTC)

SCOPES = {
    "changes of a run": Scope(change_ids=(3, 5), run_id=7),
    "a run, as previewed": Scope(run_id=7, seen=(("invoice", 40), ("ticket", 12))),
    "an agent in a window": Scope(agent_ids=(1, 2), since=SINCE, until=UNTIL, record_type="ticket"),
    "a record after a version": Scope(record_type="ticket", record_id=9, after_history_id=4, upto_history_id=8),
}


@pytest.mark.django_db
@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_an_undo_holds_its_scope_and_gives_it_back(scope):
    undo = Undo.objects.create(**scope.undo_fields(), description="test")
    undo = Undo.objects.get(pk=undo.pk)
    assert undo.scope_key == scope.key()
    # Frozen at creation: rows written after the undo was asked for are never reached.
    assert Scope.of(undo) == replace(scope, written_before=None if scope.record_id else undo.created_at)


@pytest.mark.django_db
def test_a_redo_holds_the_undo_it_redoes():
    first = Undo.objects.create(**Scope(run_id=7).undo_fields(), description="test")
    redo = Undo.objects.create(**Scope(undo_id=first.pk).undo_fields(), description="test", kind=Undo.Kind.REDO)
    assert redo.target == first
    assert Scope.of(Undo.objects.get(pk=redo.pk)).undo_id == first.pk


def test_every_part_of_a_scope_is_stored():
    everything = Scope(
        change_ids=(3,),
        run_id=7,
        agent_ids=(1,),
        since=SINCE,
        until=UNTIL,
        undo_id=2,
        record_type="ticket",
        record_id=9,
        after_history_id=4,
        upto_history_id=8,
        written_before=timezone.now(),
        seen=(("ticket", 12),),
    )
    assert all(getattr(everything, f.name) != f.default for f in fields(Scope))
    back = Scope.of(Undo(**everything.undo_fields(), created_at=everything.written_before))
    # A restore's reach is bounded by its history ids, not by when it was asked for.
    assert back == replace(everything, written_before=None)
