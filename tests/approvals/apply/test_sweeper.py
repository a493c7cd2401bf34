"""The sweeper: the database is the truth, lost tasks are found again, endless retries are not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals import lifecycle
from approvals.apply import services
from approvals.models import Change, Event
from countersign.outbox import dispatcher
from countersign.outbox.models import Dispatch
from tests.factories import make_tickets, ticket_change

S = Change.Status


@pytest.fixture
def enqueued(memory_broker):
    """What is handed to the broker (the change ids of each apply task), read off a real broker."""
    sent: list[list[int]] = []

    def read() -> list[list[int]]:
        sent.extend(m["args"][0] for m in memory_broker.published() if m["task"] == services.APPLY_TASK)
        return sent

    return read


def queued_changes(api, n=3):
    tickets = make_tickets(n)
    body = {"workflow": "ticket-triage", "run": "r-1", "changes": [ticket_change(t, f"op-{t.pk}") for t in tickets]}
    assert api.post("/api/v1/changes/batch", body).status_code == 201
    return list(Change.objects.order_by("id"))


def test_it_re_enqueues_queued_changes_whose_task_was_lost(api, enqueued, settings):
    # The intake's task was never published (the test broker is closed to the publisher thread):
    # the outbox's sweeper hands it over, once it is overdue.
    changes = queued_changes(api)
    assert dispatcher.sweep()["requeued"] == 0  # just enqueued: give the task its chance first
    Dispatch.objects.update(due_at=timezone.now() - timedelta(seconds=settings.REQUEUE_AFTER_SECONDS + 1))
    assert dispatcher.sweep()["requeued"] == 1  # one task for the batch of 3
    assert enqueued() == [[c.pk for c in changes]]
    assert dispatcher.sweep()["requeued"] == 0  # not again until the next interval


def test_an_expired_claim_is_retried(api, enqueued):
    change = queued_changes(api, 1)[0]
    lifecycle.claim([change.pk], lease_seconds=-1, actor=lifecycle.Actor.system("worker that died"))
    assert services.sweep() == {"expired": 1, "requeued": 1}
    assert Dispatch.objects.filter(task=services.APPLY_TASK).last().args == [[change.pk]]  # handed over again
    change.refresh_from_db()
    assert change.status == S.QUEUED and change.attempts == 1
    assert "did not finish in time" in change.last_error
    # And a worker then applies it once.
    assert services.apply_changes(change_ids=[change.pk])["applied"] == 1


def test_it_fails_a_change_visibly_after_too_many_attempts(api, enqueued, settings):
    settings.APPLY_MAX_ATTEMPTS = 2
    change = queued_changes(api, 1)[0]
    for _ in range(2):
        lifecycle.claim([change.pk], lease_seconds=-1, actor=lifecycle.Actor.system("worker"))
        services.sweep()
    change.refresh_from_db()
    assert change.status == S.FAILED
    assert "Gave up after 2 attempts" in Event.objects.filter(change=change).last().message


def test_a_stale_worker_cannot_apply_after_its_claim_was_taken_over(api, enqueued):
    change = queued_changes(api, 1)[0]
    stale = lifecycle.claim([change.pk], lease_seconds=-1, actor=lifecycle.Actor.system("slow worker"))[0]
    services.sweep()  # lease expired: back to queued
    services.apply_changes(change_ids=[change.pk])  # another worker applies it
    assert services._apply_one(stale, lifecycle.Actor.system("slow worker")) == "retry"
    ticket = change.run.changes.get().record_ids[0]
    from demo.models import Ticket

    assert Ticket.objects.get(pk=ticket).history.count() == 2  # created + applied once


def test_a_live_workers_heartbeat_keeps_its_claim_and_only_its_own(api, enqueued):
    change = queued_changes(api, 1)[0]
    worker = lifecycle.Actor.system("worker")
    mine = lifecycle.claim([change.pk], lease_seconds=1, actor=worker)
    assert lifecycle.renew(mine, lease_seconds=60) == 1
    assert services.sweep()["expired"] == 0  # renewed: not taken back
    # Once the claim is taken back (the heartbeat stopped) and claimed again, the old
    # worker's heartbeat renews nothing: the change is the new claimer's alone.
    Change.objects.filter(pk=change.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.sweep()["expired"] == 1
    theirs = lifecycle.claim([change.pk], lease_seconds=60, actor=worker)
    assert lifecycle.renew(mine, lease_seconds=600) == 0
    assert lifecycle.renew(theirs, lease_seconds=600) == 1
