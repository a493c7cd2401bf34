"""Each undo scope: one change, a run, a selection of a run's changes, an agent in a time
window; and creates and soft deletes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from approvals.models import Change
from approvals.undoing import scopes as undo_scopes
from demo.models import Ticket
from tests.factories import make_agent, make_customer, make_tickets
from undo.models import Undo
from undo.services import UndoRefused

from .conftest import apply_run, human_edit, redo, undo

S = Change.Status


def statuses(tickets):
    return [t.status for t in Ticket.all_objects.filter(pk__in=[t.pk for t in tickets]).order_by("id")]


@pytest.fixture
def tickets(db):
    return make_tickets(3)


@pytest.fixture
def run_of_three(run_agent, workflow, tickets):
    return apply_run(run_agent, workflow, "r-1", [(t, {"status": "pending"}) for t in tickets])


def test_it_undoes_one_change(support, tickets, run_of_three):
    run, changes = run_of_three
    target = undo_scopes.for_run(run, [changes[1].pk])
    assert target.description.startswith(f"change {changes[1].pk} of run r-1")

    undo(support, **_kwargs(target.scope))

    assert statuses(tickets) == ["pending", "open", "pending"]
    assert [c.status for c in Change.objects.order_by("id")] == [S.APPLIED, S.UNDONE, S.APPLIED]


def test_it_undoes_a_selection_of_a_runs_changes(support, tickets, run_of_three):
    run, changes = run_of_three
    target = undo_scopes.for_run(run, [changes[0].pk, changes[2].pk])
    assert "2 changes of run r-1" in target.description

    undo(support, **_kwargs(target.scope))

    assert statuses(tickets) == ["open", "pending", "open"]


def test_a_selection_must_belong_to_the_run(support, run_agent, workflow, tickets, run_of_three):
    run, _ = run_of_three
    _, (other,) = apply_run(run_agent, workflow, "r-2", [(tickets[0], {"tags": "x"})])
    with pytest.raises(UndoRefused, match=f"Change {other.pk} is not part of run r-1"):
        undo_scopes.for_run(run, [other.pk])


def test_it_undoes_everything_an_agent_version_did_in_a_time_window(support, workflow):
    bot_23 = make_agent(workflow, name="refund-bot", version="2.3")[0]
    bot_24 = make_agent(workflow, name="refund-bot", version="2.4")[0]
    before, inside, late, other_version = make_tickets(4)
    day = (timezone.now() - dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    at = {"13:00": day.replace(hour=13), "15:00": day.replace(hour=15), "17:00": day.replace(hour=17)}
    for agent, ticket, when in (
        (bot_23, before, "13:00"),
        (bot_23, inside, "15:00"),
        (bot_23, late, "17:00"),
        (bot_24, other_version, "15:00"),
    ):
        _, (change,) = apply_run(agent, workflow, f"run-{ticket.pk}", [(ticket, {"status": "closed"})])
        _backdate(change, at[when])

    target = undo_scopes.for_agent(
        name="refund-bot", version="2.3", since=day.replace(hour=14), until=day.replace(hour=16, minute=30)
    )
    assert target.description == (
        f"everything refund-bot v2.3 did between {day:%Y-%m-%d} 14:00 and {day:%Y-%m-%d} 16:30"
    )
    done = undo(support, **_kwargs(target.scope))

    assert done.records_reverted == 1
    assert statuses([before, inside, late, other_version]) == ["closed", "open", "closed", "closed"]


def test_a_window_within_one_minute_reads_to_the_second(run_agent, workflow, tickets, run_of_three):
    _, changes = run_of_three
    minute = (timezone.localtime() - dt.timedelta(days=1)).replace(second=0, microsecond=0)
    for change in changes:
        _backdate(change, minute + dt.timedelta(seconds=30))

    target = undo_scopes.for_agent(
        name="triage-bot",
        version="2.3",
        since=minute + dt.timedelta(seconds=10),
        until=minute + dt.timedelta(seconds=50),
    )

    assert target.description == (
        f"everything triage-bot v2.3 did between {minute:%Y-%m-%d %H:%M}:10 and {minute:%Y-%m-%d %H:%M}:50"
    )


def test_every_version_of_an_agent(support, workflow):
    bot_23 = make_agent(workflow, name="refund-bot", version="2.3")[0]
    bot_24 = make_agent(workflow, name="refund-bot", version="2.4")[0]
    a, b = make_tickets(2)
    apply_run(bot_23, workflow, "r-a", [(a, {"status": "closed"})])
    apply_run(bot_24, workflow, "r-b", [(b, {"status": "closed"})])
    now = timezone.now()

    target = undo_scopes.for_agent(name="refund-bot", version="", since=now - dt.timedelta(hours=1), until=now)
    undo(support, **_kwargs(target.scope))

    assert statuses([a, b]) == ["open", "open"]


def test_an_agent_window_with_nothing_applied_is_refused(workflow, run_agent, db):
    now = timezone.now()
    with pytest.raises(UndoRefused, match="applied no change between"):
        undo_scopes.for_agent(name=run_agent.name, version="", since=now - dt.timedelta(hours=2), until=now)


def test_an_agent_window_reaching_now_waits_for_changes_in_flight(run_agent, workflow, tickets, run_of_three):
    _, changes = run_of_three
    Change.objects.filter(pk=changes[0].pk).update(status=S.QUEUED)
    now = timezone.now()
    with pytest.raises(UndoRefused, match="still applying: 1 change approved, queued or being applied"):
        undo_scopes.for_agent(name=run_agent.name, version="2.3", since=now - dt.timedelta(hours=1), until=now)


# Creates and soft deletes -----------------------------------------------------------


def test_undoing_a_create_soft_deletes_it_and_redo_brings_it_back(support, run_agent, workflow):
    customer = make_customer()
    run, (change,) = apply_run(
        run_agent, workflow, "r-1", [("ticket", "create", [], {"customer": customer.pk, "subject": "Refund 12"})]
    )
    (pk,) = change.applied_record_ids

    done = undo(support, run_id=run.pk)

    assert not Ticket.objects.filter(pk=pk).exists()  # normal views hide it
    ticket = Ticket.all_objects.get(pk=pk)
    assert ticket.deleted_at is not None and ticket.deleted_by == "sam"
    assert f"undo #{done.pk}" in ticket.deleted_reason
    assert Change.objects.get(pk=change.pk).status == S.UNDONE

    redo(support, done)

    assert Ticket.objects.filter(pk=pk, subject="Refund 12").exists()
    assert Change.objects.get(pk=change.pk).status == S.APPLIED


def test_a_created_record_someone_edited_since_is_a_conflict(support, run_agent, workflow):
    customer = make_customer()
    run, (change,) = apply_run(
        run_agent, workflow, "r-1", [("ticket", "create", [], {"customer": customer.pk, "subject": "Refund 12"})]
    )
    ticket = Ticket.objects.get(pk=change.applied_record_ids[0])
    human_edit(support, ticket, internal_note="keep this one")

    done = undo(support, run_id=run.pk)

    assert Ticket.objects.filter(pk=ticket.pk).exists()
    assert done.conflicts_left == 1
    assert "it was created by these changes, and since then sam changed it" in done.conflicts[0]["lines"][0]

    forced = undo(support, run_id=run.pk, forced=[f"ticket:{ticket.pk}"])
    assert forced.forced_count == 1
    assert not Ticket.objects.filter(pk=ticket.pk).exists()


def test_undoing_a_soft_delete_restores_the_record(support, run_agent, workflow, tickets):
    ticket = tickets[0]
    run, _ = apply_run(run_agent, workflow, "r-1", [("ticket", "soft_delete", [ticket.pk], {})])
    assert not Ticket.objects.filter(pk=ticket.pk).exists()
    assert Ticket.all_objects.get(pk=ticket.pk).deleted_by == "triage-bot v2.3"

    undo(support, run_id=run.pk)

    ticket = Ticket.objects.get(pk=ticket.pk)
    assert (ticket.deleted_at, ticket.deleted_by, ticket.deleted_reason) == (None, "", "")


def test_a_record_restored_by_someone_else_since_is_left_alone(support, run_agent, workflow, tickets):
    ticket = tickets[0]
    run, _ = apply_run(run_agent, workflow, "r-1", [("ticket", "soft_delete", [ticket.pk], {})])
    human_edit(support, ticket, deleted_at=None, deleted_by="", deleted_reason="")
    human_edit(support, ticket, status="closed")

    done = undo(support, run_id=run.pk)

    # Already back as it was before the run: nothing to do, nothing in conflict.
    assert (done.records_reverted, done.already_back, done.conflicts_left) == (0, 1, 0)
    assert Ticket.objects.get(pk=ticket.pk).status == "closed"


def test_undo_scopes_never_include_undo_rows(support, tickets, run_of_three):
    run, _ = run_of_three
    first = undo(support, run_id=run.pk)
    assert Ticket.history.filter(cs_undo_id=first.pk, cs_run_id__isnull=True).count() == 3
    assert Undo.objects.count() == 1


def _kwargs(scope) -> dict:
    return {
        name: getattr(scope, name)
        for name in ("change_ids", "run_id", "agent_ids", "since", "until")
        if getattr(scope, name) not in (None, ())
    }


def _backdate(change: Change, when: dt.datetime) -> None:
    # Test set-up only: move the change's snapshot and its applied time into the past.
    Ticket.history.filter(cs_change_id=change.pk).update(history_date=when)
    Change.objects.filter(pk=change.pk).update(applied_at=when)
