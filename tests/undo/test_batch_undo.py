"""Undoing a run in one go: what goes back, what is kept, and what is recorded."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from approvals.models import Change, Event
from countersign.outbox import dispatcher
from countersign.outbox.models import Dispatch
from demo.models import Ticket
from tests.factories import make_tickets
from undo import services, write
from undo.models import Undo
from undo.preview import preview_undo
from undo.scopes import Scope

from .conftest import apply_run, human_edit, redo, undo

S = Change.Status


@pytest.fixture
def tickets(db):
    return make_tickets(3)


@pytest.fixture
def run_of_three(run_agent, workflow, tickets):
    return apply_run(run_agent, workflow, "r-1", [(t, {"status": "resolved", "tags": "billing"}) for t in tickets])


def values(tickets):
    return [(t.status, t.tags) for t in Ticket.all_objects.filter(pk__in=[t.pk for t in tickets]).order_by("id")]


def test_it_undoes_a_run_and_marks_its_changes_undone(support, tickets, run_of_three):
    run, changes = run_of_three
    assert values(tickets) == [("resolved", "billing")] * 3

    done = undo(support, run_id=run.pk)

    assert done.status == Undo.Status.DONE
    assert values(tickets) == [("open", "")] * 3
    assert (done.records_reverted, done.fields_reverted, done.conflicts_left) == (3, 6, 0)
    assert sorted(done.change_ids_done) == [c.pk for c in changes]
    assert set(Change.objects.values_list("status", flat=True)) == {S.UNDONE}
    events = Event.objects.filter(to_status=S.UNDONE)
    assert events.count() == 3
    assert all(e.actor == support and f"undo #{done.pk}" in e.message for e in events)


def test_the_undo_itself_is_in_the_audit_trail(support, tickets, run_of_three):
    run, _ = run_of_three
    done = undo(support, run_id=run.pk, description="run r-1")

    asked, finished = Event.objects.filter(details__has_key="undo").order_by("id")
    assert asked.message == (
        f"sam asked for undo #{done.pk}: run r-1. 3 records to check. Next: each is set back; one changed "
        "since by someone else is left as it is, unless the owner chose to overwrite it."
    )
    assert finished.message == (
        f"undo #{done.pk}: run r-1 is done. 3 records set back, 3 changes undone. "
        "Nothing more happens unless it is itself undone."
    )
    assert (finished.run, finished.workflow, finished.actor) == (run, run.workflow, support)
    assert finished.details == {"undo": done.pk, "kind": "undo", "status": "done"}


def test_the_audit_line_counts_in_words(support, tickets, run_of_three):
    _, changes = run_of_three
    one = undo(support, change_ids=(changes[0].pk,), description="change 1")
    assert Event.objects.filter(details__has_key="undo").last().message == (
        f"undo #{one.pk}: change 1 is done. 1 record set back, 1 change undone. "
        "Nothing more happens unless it is itself undone."
    )


def test_its_history_rows_are_tagged_with_the_undo(support, tickets, run_of_three):
    run, _ = run_of_three
    done = undo(support, run_id=run.pk)

    rows = Ticket.history.filter(cs_undo_id=done.pk)
    assert rows.count() == 3
    for row in rows:
        assert (row.history_type, row.status, row.tags) == ("~", "open", "")
        assert row.history_user == support
        assert row.cs_change_id is None and row.cs_run_id is None and row.cs_agent_id is None
        assert f"undo #{done.pk} by sam" in row.history_change_reason
    # simple-history reads our rows back like its own.
    latest = tickets[0].history.first()
    assert latest.history_id == rows.get(id=tickets[0].pk).history_id
    assert latest.instance.status == "open"


def test_a_later_edit_of_another_field_is_kept_and_is_no_conflict(support, tickets, run_of_three):
    run, _ = run_of_three
    human_edit(support, tickets[0], internal_note="called the customer")

    done = undo(support, run_id=run.pk)

    tickets[0].refresh_from_db()
    assert (tickets[0].status, tickets[0].tags, tickets[0].internal_note) == ("open", "", "called the customer")
    assert done.conflicts_left == 0
    # The undo's snapshot is the whole record as it now is, the kept edit included.
    snapshot = Ticket.history.get(cs_undo_id=done.pk, id=tickets[0].pk)
    assert (snapshot.status, snapshot.tags, snapshot.internal_note) == ("open", "", "called the customer")


def test_a_later_edit_of_the_same_field_is_a_conflict_and_its_change_stays_whole(support, tickets, run_of_three):
    run, changes = run_of_three
    human_edit(support, tickets[0], status="closed")

    preview = preview_undo(scope=Scope(run_id=run.pk), description="run r-1")
    assert (preview.records, preview.records_to_write, preview.conflicts, preview.held) == (3, 2, 1, 0)
    (item,) = preview.conflict_items
    assert "status: these changes set it to resolved; since then sam set it to closed" in item.conflicts[0]
    # The change set status and tags: it goes back whole or not at all, so its tags stay too.
    assert item.held == [
        f"tags stays at billing with change #{changes[0].pk}: part of that change stays as it is, "
        "and a change goes back whole or not at all"
    ]
    assert item.lines == []

    done = undo(support, run_id=run.pk)

    assert values(tickets) == [("closed", "billing"), ("open", ""), ("open", "")]
    assert done.conflicts_left == 1
    assert "sam set it to closed" in done.conflicts[0]["lines"][0]
    assert "tags stays at billing" in done.conflicts[0]["lines"][1]
    # The change in conflict stays applied, all of it; the others are undone.
    statuses = dict(Change.objects.values_list("pk", "status"))
    assert statuses == {changes[0].pk: S.APPLIED, changes[1].pk: S.UNDONE, changes[2].pk: S.UNDONE}


def test_a_change_in_conflict_holds_back_the_other_changes_it_shares_a_field_with(support, run_agent, workflow):
    (ticket,) = make_tickets(1)
    run, (first, second) = apply_run(
        run_agent, workflow, "r-1", [(ticket, {"status": "pending", "tags": "billing"}), (ticket, {"tags": "refund"})]
    )
    human_edit(support, ticket, status="closed")  # a conflict for the first change only

    done = undo(support, run_id=run.pk)

    # Taking tags back would take back half of the first change: so both stay.
    ticket.refresh_from_db()
    assert (ticket.status, ticket.tags) == ("closed", "refund")
    assert done.records_reverted == 0
    assert set(Change.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {S.APPLIED}


def test_the_owner_can_force_a_record_in_conflict(support, tickets, run_of_three):
    run, changes = run_of_three
    human_edit(support, tickets[0], status="closed")

    done = undo(support, run_id=run.pk, forced=[f"ticket:{tickets[0].pk}"])

    assert values(tickets) == [("open", "")] * 3
    assert (done.forced_count, done.conflicts_left) == (1, 0)
    assert set(Change.objects.values_list("status", flat=True)) == {S.UNDONE}
    # The person's edit is replaced, not lost: it stays in the record's history.
    assert tickets[0].history.filter(status="closed", history_user=support).exists()


def test_the_owner_can_skip_a_record_in_conflict(support, tickets, run_of_three):
    run, changes = run_of_three
    human_edit(support, tickets[0], status="closed")
    key = f"ticket:{tickets[0].pk}"

    preview = preview_undo(scope=Scope(run_id=run.pk), description="run r-1", skipped=[key])
    assert (preview.records_to_write, preview.conflicts, preview.skipped) == (2, 1, 1)
    assert preview.conflict_items[0].skipped

    done = undo(support, run_id=run.pk, skipped=[key])

    # Skipped: not even its tags, which nobody touched since, go back.
    assert values(tickets) == [("closed", "billing"), ("open", ""), ("open", "")]
    assert (done.records_reverted, done.skipped_count, done.conflicts_left) == (2, 1, 0)
    assert not Ticket.history.filter(cs_undo_id=done.pk, id=tickets[0].pk).exists()
    assert done.conflicts[0]["key"] == key and done.conflicts[0]["lines"][0].startswith("Skipped, as asked")
    statuses = dict(Change.objects.values_list("pk", "status"))
    assert statuses == {changes[0].pk: S.APPLIED, changes[1].pk: S.UNDONE, changes[2].pk: S.UNDONE}


def test_skipping_wins_over_forcing_and_works_on_records_without_conflict(support, tickets, run_of_three):
    run, _ = run_of_three
    human_edit(support, tickets[0], status="closed")
    keys = [f"ticket:{t.pk}" for t in tickets]

    done = undo(support, run_id=run.pk, forced=keys[:1], skipped=keys[:2])

    assert values(tickets) == [("closed", "billing"), ("resolved", "billing"), ("open", "")]
    assert (done.records_reverted, done.forced_count, done.skipped_count) == (1, 0, 2)


def test_undoing_twice_writes_nothing_more(support, tickets, run_of_three):
    run, _ = run_of_three
    undo(support, run_id=run.pk)
    rows, events = Ticket.history.count(), Event.objects.exclude(details__has_key="undo").count()

    again = undo(support, run_id=run.pk)

    assert (again.records_reverted, again.already_back, again.change_ids_done) == (0, 3, [])
    assert (Ticket.history.count(), Event.objects.exclude(details__has_key="undo").count()) == (rows, events)
    assert values(tickets) == [("open", "")] * 3
    # The audit trail still says it was asked for, and that it wrote nothing.
    assert Event.objects.filter(details__has_key="undo").last().message == (
        f"{again} is done. 0 records set back, 0 changes undone. Nothing more happens unless it is itself undone."
    )


def test_redo_puts_everything_back_and_reapplies_the_changes(support, tickets, run_of_three):
    run, changes = run_of_three
    done = undo(support, run_id=run.pk)

    redone = redo(support, done)

    assert redone.kind == Undo.Kind.REDO and redone.target == done
    assert values(tickets) == [("resolved", "billing")] * 3
    assert set(Change.objects.values_list("status", flat=True)) == {S.APPLIED}
    assert Event.objects.filter(from_status=S.UNDONE, to_status=S.APPLIED).count() == 3
    assert Ticket.history.filter(cs_undo_id=redone.pk).count() == 3


def test_undo_after_a_redo_is_a_plain_undo_again(support, tickets, run_of_three):
    run, _ = run_of_three
    first = undo(support, run_id=run.pk)
    redo(support, first)

    second = undo(support, run_id=run.pk)

    # The first undo and its redo are this scope's own rows, not someone else's later edits.
    assert (second.records_reverted, second.conflicts_left) == (3, 0)
    assert values(tickets) == [("open", "")] * 3
    assert set(Change.objects.values_list("status", flat=True)) == {S.UNDONE}


def test_an_undo_and_its_redo_cancel_out_for_an_overlapping_scope(support, tickets, run_of_three):
    run, changes = run_of_three
    redo(support, undo(support, run_id=run.pk))

    # The run is in effect again: undoing one of its changes finds nobody else's edit.
    done = undo(support, change_ids=(changes[0].pk,))

    assert (done.records_reverted, done.conflicts_left) == (1, 0)
    assert values(tickets) == [("open", ""), ("resolved", "billing"), ("resolved", "billing")]
    assert Change.objects.get(pk=changes[0].pk).status == S.UNDONE


def test_an_edit_between_an_undo_and_its_redo_is_still_someone_elses(support, tickets, run_of_three):
    run, changes = run_of_three
    first = undo(support, run_id=run.pk)
    human_edit(support, tickets[0], status="closed")
    put_back = redo(support, first)
    # The redo puts back whole changes: the first one stays undone (sam's status is kept).
    assert put_back.conflicts_left == 1 and values(tickets)[0] == ("closed", "")

    assert "sam set it to closed" in put_back.conflicts[0]["lines"][0]

    # The first change is still undone: undoing it again finds nothing to do, and keeps sam's edit.
    done = undo(support, change_ids=(changes[0].pk,), forced=[f"ticket:{tickets[0].pk}"])

    assert (done.records_reverted, done.conflicts_left, done.already_back) == (0, 0, 1)
    assert values(tickets)[0] == ("closed", "")


def test_two_changes_of_a_run_to_one_field_go_back_to_the_value_before_the_run(support, run_agent, workflow, tickets):
    ticket = tickets[0]
    run, _ = apply_run(run_agent, workflow, "r-1", [(ticket, {"status": "pending"}), (ticket, {"status": "closed"})])

    undo(support, run_id=run.pk)

    ticket.refresh_from_db()
    assert ticket.status == "open"


def test_a_person_edit_in_the_middle_of_a_run_survives(support, run_agent, workflow, tickets):
    ticket = tickets[0]
    run, _ = apply_run(run_agent, workflow, "r-1", [(ticket, {"status": "pending"})])
    human_edit(support, ticket, status="resolved")
    apply_run(run_agent, workflow, "r-1", [(ticket, {"status": "closed"})])

    undo(support, run_id=run.pk)

    ticket.refresh_from_db()
    assert ticket.status == "resolved"


def test_each_change_goes_back_with_all_its_records_or_stays(support, run_agent, workflow, tickets):
    run, (change,) = apply_run(
        run_agent, workflow, "r-1", [("ticket", "update", [t.pk for t in tickets], {"status": "pending"})]
    )
    human_edit(support, tickets[1], status="closed")
    preview = preview_undo(scope=Scope(run_id=run.pk), description="run r-1")
    assert (preview.conflicts, preview.held, preview.already, preview.records_to_write) == (1, 2, 0, 0)

    with override_batch(1):  # even one record per chunk keeps a change's records together
        done = undo(support, run_id=run.pk)

    # Part of it stays (a conflict on ticket 1), so all of it stays, on every record.
    assert values(tickets) == [("pending", ""), ("closed", ""), ("pending", "")]
    assert (done.records_reverted, done.conflicts_left, done.already_back) == (0, 3, 0)
    change.refresh_from_db()
    assert change.status == S.APPLIED


def test_large_undos_run_on_a_worker_after_commit(
    support, tickets, run_of_three, settings, django_capture_on_commit_callbacks
):
    run, _ = run_of_three
    settings.UNDO_INLINE_MAX_RECORDS = 2
    with django_capture_on_commit_callbacks() as pending:
        made = services.request_undo(scope=Scope(run_id=run.pk), description="r-1", user=support)
    # Recorded with the undo, handed to the workers only once it is committed.
    (handed,) = Dispatch.objects.filter(task=services.EXECUTE_TASK)
    assert handed.args == [made.pk] and handed.state == Dispatch.State.PENDING
    assert [c.func for c in pending] == [dispatcher.publish_soon]
    made.refresh_from_db()
    assert made.status == Undo.Status.QUEUED and values(tickets) == [("resolved", "billing")] * 3

    services.execute_undo(undo_id=made.pk)

    made.refresh_from_db()
    assert made.status == Undo.Status.DONE and made.percent == 100
    assert values(tickets) == [("open", "")] * 3


def test_a_running_undo_is_not_run_twice(support, tickets, run_of_three, settings):
    run, _ = run_of_three
    settings.UNDO_INLINE_MAX_RECORDS = 0
    made = services.request_undo(scope=Scope(run_id=run.pk), description="r-1", user=support)
    Undo.objects.filter(pk=made.pk).update(status=Undo.Status.RUNNING, lease_until=made.created_at.replace(year=2999))

    assert services.execute_undo(undo_id=made.pk) is None
    assert values(tickets) == [("resolved", "billing")] * 3
    with pytest.raises(services.UndoRefused, match="already running"):
        services.request_undo(scope=Scope(run_id=run.pk), description="r-1", user=support)


def test_an_interrupted_undo_finishes_when_run_again(support, tickets, run_of_three):
    run, changes = run_of_three
    human_edit(support, tickets[2], status="closed")
    real_write = write.write_chunk
    calls = []

    def fail_on_second_chunk(plans, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the disk is full")
        return real_write(plans, **kwargs)

    with override_batch(1), mock.patch("undo.write.write_chunk", fail_on_second_chunk):
        failed = undo(support, run_id=run.pk)

    assert failed.status == Undo.Status.FAILED
    assert "stopped after 1 of 3 records: the disk is full" in failed.error
    assert values(tickets) == [("open", ""), ("resolved", "billing"), ("closed", "billing")]
    assert failed.conflicts_left == 0

    with override_batch(1):
        services.retry_undo(undo=failed, user=support)

    failed.refresh_from_db()
    assert failed.status == Undo.Status.DONE
    # Counted once, though the first record was checked by both attempts.
    assert (failed.records_reverted, failed.already_back, failed.conflicts_left) == (2, 0, 1)
    assert len(failed.conflicts) == 1
    assert values(tickets) == [("open", ""), ("open", ""), ("closed", "billing")]
    assert Ticket.history.filter(cs_undo_id=failed.pk).count() == 2  # nothing written twice
    assert sorted(failed.change_ids_done) == [c.pk for c in changes[:2]]


def test_a_reviewer_who_owns_nothing_may_not_undo(reviewer, tickets, run_of_three):
    run, _ = run_of_three
    with pytest.raises(services.NotAllowed, match=r"Only the owners of these records \(support\) and admins"):
        undo(reviewer, run_id=run.pk)
    assert Undo.objects.count() == 0
    assert values(tickets) == [("resolved", "billing")] * 3


def test_an_owner_of_other_records_may_not_undo(finance, tickets, run_of_three):
    run, _ = run_of_three
    with pytest.raises(services.NotAllowed):
        undo(finance, run_id=run.pk)


def test_an_admin_may_undo(admin_user, tickets, run_of_three):
    run, _ = run_of_three
    assert undo(admin_user, run_id=run.pk).records_reverted == 3


def test_nothing_in_scope_is_refused_in_plain_words(support, db):
    with pytest.raises(services.NothingToUndo, match="no record was changed by run 404"):
        services.request_undo(scope=Scope(run_id=404), description="run 404", user=support)


def override_batch(size: int):
    return mock.patch("django.conf.settings.UNDO_BATCH_SIZE", size)


def test_the_sweeper_hands_undos_nobody_runs_to_a_worker(support, tickets, run_of_three, settings, memory_broker):
    run, _ = run_of_three
    settings.UNDO_INLINE_MAX_RECORDS = 0
    made = services.request_undo(scope=Scope(run_id=run.pk), description="r-1", user=support)
    # The broker was down at commit: the undo waits, queued. Later, the outbox's sweeper finds it.
    Dispatch.objects.update(due_at=made.created_at.replace(year=2000))
    assert dispatcher.sweep()["requeued"] == 1
    assert [m["args"] for m in memory_broker.published()] == [[made.pk]]


def test_an_undo_whose_worker_died_is_run_again_once_its_lease_ends(support, tickets, run_of_three, settings):
    run, _ = run_of_three
    settings.UNDO_INLINE_MAX_RECORDS = 0
    made = services.request_undo(scope=Scope(run_id=run.pk), description="r-1", user=support)
    ends = timezone.now() + timedelta(minutes=5)
    Undo.objects.filter(pk=made.pk).update(status=Undo.Status.RUNNING, lease_until=ends)  # then the worker died

    # Its task, handed over again, finds the undo held: it looks again when the lease ends.
    assert services.execute_undo(undo_id=made.pk) is None
    again = Dispatch.objects.filter(task=services.EXECUTE_TASK).last()
    assert again.args == [made.pk] and again.due_at == ends + timedelta(seconds=1)

    Undo.objects.filter(pk=made.pk).update(lease_until=timezone.now() - timedelta(seconds=1))  # ... and it has
    services.execute_undo(undo_id=made.pk)
    made.refresh_from_db()
    assert made.status == Undo.Status.DONE and values(tickets) == [("open", "")] * 3


def test_a_record_whose_earlier_history_is_gone_is_left_and_said_so(support, tickets, run_of_three):
    run, (first, _, _) = run_of_three
    Ticket.history.filter(id=tickets[0].pk, history_type="+").delete()  # pruned by someone

    done = undo(support, run_id=run.pk, forced=[f"ticket:{tickets[0].pk}"])

    assert values(tickets) == [("resolved", "billing"), ("open", ""), ("open", "")]
    assert done.conflicts_left == 1
    assert "has no version before these changes to go back to" in done.conflicts[0]["lines"][-1]
    assert Change.objects.get(pk=first.pk).status == S.APPLIED


# Changes already undone ---------------------------------------------------------------


def test_undoing_a_run_again_after_a_later_run_writes_nothing_whatever_is_forced(support, run_agent, workflow, tickets):
    run, changes = apply_run(run_agent, workflow, "r-1", [(t, {"status": "resolved"}) for t in tickets])
    undo(support, run_id=run.pk)
    later, later_changes = apply_run(run_agent, workflow, "r-2", [(t, {"status": "closed"}) for t in tickets])
    rows = Ticket.history.count()

    preview = preview_undo(scope=Scope(run_id=run.pk), description="run r-1")
    # Its changes were undone already: the later run's writes are nobody's conflict.
    assert (preview.conflicts, preview.records_to_write, preview.already, preview.changes) == (0, 0, 3, 0)
    assert preview.nothing_to_do

    again = undo(support, run_id=run.pk, forced=[f"ticket:{t.pk}" for t in tickets])

    assert values(tickets) == [("closed", "")] * 3  # the later run's writes stay
    assert (again.records_reverted, again.forced_count, again.conflicts_left, again.already_back) == (0, 0, 0, 3)
    assert again.change_ids_done == [] and Ticket.history.count() == rows
    assert set(Change.objects.filter(run=run).values_list("status", flat=True)) == {S.UNDONE}
    assert set(Change.objects.filter(run=later).values_list("status", flat=True)) == {S.APPLIED}


def test_undoing_a_change_its_run_undo_took_back_writes_nothing(support, run_of_three, tickets):
    run, changes = run_of_three
    undo(support, run_id=run.pk)
    human_edit(support, tickets[0], status="closed")

    again = undo(support, change_ids=(changes[0].pk,), forced=[f"ticket:{tickets[0].pk}"])

    assert values(tickets)[0] == ("closed", "")
    assert (again.records_reverted, again.conflicts_left, again.already_back, again.change_ids_done) == (0, 0, 1, [])


def test_undoing_a_run_after_one_of_its_changes_was_undone_takes_back_the_rest(support, run_agent, workflow, tickets):
    ticket = tickets[0]
    run, (first, second) = apply_run(
        run_agent, workflow, "r-1", [(ticket, {"status": "pending"}), (ticket, {"status": "closed"})]
    )
    undo(support, change_ids=(second.pk,))  # back to pending: the first change stays

    done = undo(support, run_id=run.pk)

    # The undo of the second change is the run's own history, not someone else's edit.
    ticket.refresh_from_db()
    assert ticket.status == "open"
    assert (done.records_reverted, done.conflicts_left) == (1, 0)
    assert done.change_ids_done == [first.pk]  # the second one was undone already
