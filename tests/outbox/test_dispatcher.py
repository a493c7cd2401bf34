"""The outbox: a dispatch is written in the caller's transaction, published after commit from a
thread of the process, marked done by the worker, and handed over again while it is not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from approvals.agents import callbacks
from approvals.apply.services import APPLY_TASK
from approvals.models import Change
from countersign.outbox import dispatcher
from countersign.outbox.models import Dispatch
from demo.models import Ticket
from tests.conftest import CLOSED_BROKER, point_celery_at, run_dispatched, wait_until, worker_app
from tests.factories import ticket_change
from undo import services as undo_services

D = Dispatch.State


class Refused(Exception):
    pass


def overdue(settings, **filters) -> None:
    """Move every matching dispatch back in time, past the sweeper's patience."""
    past = timezone.now() - timedelta(seconds=settings.REQUEUE_AFTER_SECONDS + 1)
    rows = Dispatch.objects.filter(**filters)
    rows.update(due_at=past)
    rows.exclude(sent_at=None).update(sent_at=past)


def test_a_dispatch_is_written_in_the_callers_transaction_and_rolled_back_with_it(db):
    with pytest.raises(Refused), transaction.atomic():
        row = dispatcher.dispatch(APPLY_TASK, [[1, 2]])
        assert Dispatch.objects.get(pk=row.pk).state == D.PENDING
        raise Refused
    assert not Dispatch.objects.exists()


def test_every_task_the_code_dispatches_is_a_celery_task():
    # Tasks are named by string (services never import tasks): a misspelt name would only show in a worker.
    app = worker_app()
    names = {APPLY_TASK, callbacks.DELIVER_TASK, callbacks.DELIVER_MANY_TASK, undo_services.EXECUTE_TASK}
    assert names <= set(app.tasks)
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(app.tasks)


def test_it_is_published_once_committed_from_the_publisher_thread(
    db, memory_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as pending, transaction.atomic():
        row = dispatcher.dispatch(APPLY_TASK, [[1, 2]])
    assert memory_broker.published() == []  # nothing before the commit
    assert [c.func for c in pending] == [dispatcher.publish_soon]

    pending[0]()  # what the commit runs: hand the rows to the publisher thread

    def sent():
        """the publisher thread to hand the dispatch to the broker"""
        return memory_broker.published()

    (message,) = wait_until(sent, timeout=10)
    assert message == {"task": APPLY_TASK, "args": [[1, 2]], "id": f"outbox-{row.pk}", "eta": None}


@pytest.mark.django_db(transaction=True)
def test_a_committed_dispatch_reaches_the_broker_without_the_caller_waiting(memory_broker):
    with transaction.atomic():
        row = dispatcher.dispatch(APPLY_TASK, [[7]])

    def sent():
        """the dispatch marked sent by the publisher thread"""
        return Dispatch.objects.get(pk=row.pk).state == D.SENT

    wait_until(sent, timeout=10)
    assert [m["id"] for m in memory_broker.published()] == [f"outbox-{row.pk}"]


def test_while_the_broker_is_down_the_row_waits_and_the_sweeper_hands_it_over(db, memory_broker, settings):
    row = dispatcher.dispatch(APPLY_TASK, [[3]])
    point_celery_at(CLOSED_BROKER)
    assert dispatcher.publish([row]) == 0
    row.refresh_from_db()
    assert row.state == D.PENDING and row.attempts == 0 and "the broker is unavailable" in row.last_error
    assert dispatcher.sweep()["requeued"] == 0  # still down, and not yet overdue anyway

    point_celery_at(memory_broker.url)
    assert dispatcher.sweep()["requeued"] == 0  # the publisher thread gets its chance first
    overdue(settings)
    assert dispatcher.sweep()["requeued"] == 1
    assert [m["args"] for m in memory_broker.published()] == [[[3]]]
    row.refresh_from_db()
    assert (row.state, row.attempts) == (D.SENT, 1)


def test_a_task_the_broker_lost_is_handed_over_again_until_a_worker_has_done_it(db, memory_broker, settings):
    row = dispatcher.dispatch(APPLY_TASK, [[]])
    dispatcher.publish([row])
    memory_broker.published()  # ... and the broker forgets it
    overdue(settings)
    assert dispatcher.sweep()["requeued"] == 1
    (message,) = memory_broker.published()
    assert message["id"] == f"outbox-{row.pk}"
    assert run_dispatched(APPLY_TASK) == [row]  # a worker runs it: done
    overdue(settings, pk=row.pk)
    assert dispatcher.sweep()["requeued"] == 0
    assert memory_broker.published() == []


def test_it_gives_up_visibly_after_too_many_hand_overs(db, memory_broker, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    row = dispatcher.dispatch(APPLY_TASK, [[]])
    dispatcher.publish([row])  # lost, and lost again after the sweeper hands it over:
    overdue(settings)
    assert dispatcher.sweep() == {"requeued": 1, "given_up": 0, "forgotten": 0}
    overdue(settings)
    assert dispatcher.sweep() == {"requeued": 0, "given_up": 1, "forgotten": 0}
    row.refresh_from_db()
    assert row.state == D.FAILED and row.last_error.startswith("Given up after 2 hand-overs")
    assert len(memory_broker.published()) == 2


def test_a_later_attempt_is_published_for_its_time(db, memory_broker):
    at = timezone.now() + timedelta(minutes=5)
    row = dispatcher.dispatch(APPLY_TASK, [[]], not_before=at)
    dispatcher.publish([row])
    (message,) = memory_broker.published()
    assert message["eta"] == at.isoformat()


def test_a_duplicate_publish_writes_nothing_twice(api, ticket, memory_broker, settings):
    body = {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)}
    assert api.post("/api/v1/changes", body).status_code == 201
    row = Dispatch.objects.get(task=APPLY_TASK)
    dispatcher.publish([row])
    overdue(settings)
    dispatcher.sweep()  # handed over again while the first is still in the queue
    first, second = memory_broker.published()
    assert first["id"] == second["id"] == f"outbox-{row.pk}"

    app = worker_app()
    for message in (first, second):  # the worker runs both
        app.tasks[message["task"]].apply(args=message["args"], task_id=message["id"])

    change = Change.objects.get()
    assert change.status == Change.Status.APPLIED
    assert Ticket.history.filter(cs_change_id=change.pk).count() == 1
    assert Dispatch.objects.get(pk=row.pk).state == D.DONE


def test_a_failing_task_keeps_its_dispatch_open_and_says_why(db, memory_broker):
    row = dispatcher.dispatch(APPLY_TASK, [["not an id"]])
    dispatcher.publish([row])
    app = worker_app()
    app.tasks[APPLY_TASK].apply(args=row.args, task_id=f"outbox-{row.pk}")
    row.refresh_from_db()
    assert row.state == D.SENT and row.last_error.startswith("ValueError")


def test_done_dispatches_are_forgotten_after_some_days(db, settings):
    old, recent = dispatcher.dispatch_each(APPLY_TASK, [[[]], [[]]])
    Dispatch.objects.update(state=D.DONE, done_at=timezone.now())
    Dispatch.objects.filter(pk=old.pk).update(done_at=timezone.now() - timedelta(days=settings.OUTBOX_KEEP_DAYS + 1))
    assert dispatcher.sweep()["forgotten"] == 1
    assert list(Dispatch.objects.values_list("pk", flat=True)) == [recent.pk]
