"""The change lifecycle: one table of allowed moves, each move checked and audited."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from approvals import lifecycle
from approvals.lifecycle import ALLOWED, Actor, ChangeMoved, IllegalTransition
from approvals.models import Change, Event, Run
from approvals.models import changes as change_models
from tests.factories import make_agent, make_ticket, make_workflow

S = Change.Status


@pytest.fixture
def make_change(db):
    workflow = make_workflow()
    agent, _ = make_agent(workflow)
    run = Run.objects.create(workflow=workflow, agent=agent, external_id="r-1")
    ticket = make_ticket()
    counter = iter(range(10_000))

    def make(status=S.PENDING_REVIEW) -> Change:
        return Change.objects.create(
            run=run,
            workflow=workflow,
            agent=agent,
            operation_id=f"op-{next(counter)}",
            body_hash="x",
            record_type="ticket",
            record_ids=[ticket.pk],
            values={"tags": "billing"},
            expected={str(ticket.pk): {"tags": ""}},
            risk=0.5,
            confidence=0.5,
            status=status,
        )

    return make


def test_every_status_has_a_row_in_the_table():
    assert set(ALLOWED) == set(S.values)
    for targets in ALLOWED.values():
        assert set(targets) <= set(S.values)


def test_status_groups_are_statuses_and_do_not_overlap():
    groups = [lifecycle.WAITING, lifecycle.IN_FLIGHT, lifecycle.WRITTEN]
    for group in groups:
        assert set(group) <= set(S.values)
    assert sum(len(g) for g in groups) == len(set().union(*groups))


def test_the_models_literal_waiting_statuses_are_lifecycles():
    # The review queue's partial indexes spell the group out (the migrations froze it).
    assert change_models._WAITING == lifecycle.WAITING
    conditions = {i.name: i.condition for i in Change._meta.indexes if i.name.startswith("change_waiting")}
    assert set(conditions) == {"change_waiting", "change_waiting_group"}
    for condition in conditions.values():
        assert condition.children == [("status__in", lifecycle.WAITING)]


def test_status_groups_are_defined_only_in_the_lifecycle():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("approvals/**/*.py"), *root.glob("undo/**/*.py")]:
        if path.name == "lifecycle.py" or path.parent.name == "models" or "migrations" in path.parts:
            continue
        # A module-level tuple of statuses, or another name for one of lifecycle's groups.
        if re.search(
            r"^[A-Z_]+ = (\((S|Change\.Status)\.|\(\"pending_review\"|WAITING\b|WRITTEN\b)", path.read_text(), re.M
        ):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


@pytest.mark.parametrize("frm, to", [(f, t) for f, ts in ALLOWED.items() for t in ts])
def test_it_makes_every_allowed_move_and_writes_an_event(make_change, frm, to):
    change = make_change(frm)
    lifecycle.transition(change, to, actor=Actor.system("test"), reason="because")
    change.refresh_from_db()
    assert change.status == to
    event = Event.objects.get(change=change)
    assert (event.from_status, event.to_status) == (frm, to)
    assert "because" in event.message


@pytest.mark.parametrize("frm, to", [(f, t) for f in S.values for t in S.values if t not in ALLOWED[f]][:40])
def test_it_refuses_moves_outside_the_table(make_change, frm, to):
    change = make_change(frm)
    with pytest.raises(IllegalTransition):
        lifecycle.transition(change, to, actor=Actor.system("test"))
    change.refresh_from_db()
    assert change.status == frm
    assert not Event.objects.filter(change=change).exists()


def test_a_stale_change_is_not_moved_twice(make_change):
    change = make_change(S.PENDING_REVIEW)
    stale_copy = Change.objects.get(pk=change.pk)
    lifecycle.transition(change, S.APPROVED, actor=Actor.system("first reviewer"))
    with pytest.raises(ChangeMoved) as caught:
        lifecycle.transition(stale_copy, S.REJECTED, actor=Actor.system("second reviewer"))
    assert caught.value.current == S.APPROVED
    assert "already approved" in str(caught.value)
    assert Event.objects.filter(change=change).count() == 1


def test_claim_takes_only_queued_changes_once(make_change):
    queued = [make_change(S.QUEUED) for _ in range(3)]
    waiting = make_change(S.PENDING_REVIEW)
    ids = [c.pk for c in queued] + [waiting.pk]
    claimed = lifecycle.claim(ids, lease_seconds=60, actor=Actor.system("worker"))
    assert sorted(c.pk for c in claimed) == sorted(c.pk for c in queued)
    assert all(c.attempts == 1 and c.status == S.APPLYING for c in claimed)
    assert lifecycle.claim(ids, lease_seconds=60, actor=Actor.system("worker")) == []
    assert Change.objects.filter(status=S.APPLYING, attempts=1, lease_until__isnull=False).count() == 3


def test_nothing_outside_the_lifecycle_assigns_a_status():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("approvals/**/*.py"), *root.glob("undo/**/*.py")]:
        if path.name == "lifecycle.py" or "migrations" in path.parts:
            continue
        text = path.read_text()
        # Assigning a change's status, or a queryset update of changes' status.
        if re.search(r"\b\w*change\w*\.status\s*=[^=]|Change\.objects\b[^\n]*\.update\([^)]*\bstatus\s*=", text):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_the_same_changes_split_them(make_change):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    ids = [make_change(S.QUEUED).pk for _ in range(100)]

    def worker(name):
        try:
            return {c.pk for c in lifecycle.claim(ids, lease_seconds=60, actor=Actor.system(name))}
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(worker, ["worker 1", "worker 2"])
    assert first | second == set(ids)
    assert not first & second
    assert Event.objects.filter(to_status=S.APPLYING).count() == 100
