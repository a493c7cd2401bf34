"""A hung broker (Redis frozen with SIGSTOP) must not slow an agent's POST: the change is
recorded, and the broker hears of it when it answers again (the outbox's sweeper hands it over)."""

from __future__ import annotations

import time

import pytest
import redis

from approvals.models import Change
from countersign.outbox import dispatcher
from tests.conftest import CLOSED_BROKER, RedisServer, point_celery_at, wait_until
from tests.factories import make_tickets, propose_waiting, ticket_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def frozen_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    point_celery_at(server.url)
    yield server
    point_celery_at(CLOSED_BROKER)
    server.stop()


def test_proposals_are_answered_at_once_while_the_broker_hangs(frozen_redis, api, settings):
    tickets = make_tickets(3)
    api.get("/api/v1/changes/0")  # a warm process: the first request imports every view (~1 s here), broker or not
    frozen_redis.pause()
    try:
        for i, ticket in enumerate(tickets):
            body = {"workflow": "ticket-triage", "run": "r-hung", **ticket_change(ticket, f"op-hung-{i}")}
            started = time.monotonic()
            response = api.post("/api/v1/changes", body)
            elapsed = time.monotonic() - started
            assert response.status_code == 201, response.content
            assert response.json()["status"] == "queued"
            assert elapsed < 1.0, f"the POST waited {elapsed:.1f} s on the hung broker"
    finally:
        frozen_redis.resume()
    assert Change.objects.filter(status=Change.Status.QUEUED).count() == 3

    # Once the broker answers again, the outbox's sweeper hands the recorded changes to it
    # (unless the publisher thread, its timeouts over, has just done so: then again, harmlessly).
    settings.REQUEUE_AFTER_SECONDS = 0
    assert dispatcher.sweep()["requeued"] == 3
    broker = redis.Redis.from_url(frozen_redis.url)

    def enqueued():
        """the apply task in the broker's queue"""
        return broker.llen("celery") >= 1

    wait_until(enqueued, timeout=20)


def test_a_reviewers_approval_is_answered_at_once_while_the_broker_hangs(
    frozen_redis, api, agent, receiver, support, client
):
    # The approval queues the change and records the agent's callback: neither may wait on the broker.
    agent.set_callback(receiver.url)
    agent.save()
    (ticket,) = make_tickets(1)
    change = propose_waiting(api, ticket, "op-hung-review")
    client.force_login(support)
    frozen_redis.pause()
    try:
        started = time.monotonic()
        response = client.post(f"/changes/{change.pk}/approve")
        elapsed = time.monotonic() - started
    finally:
        frozen_redis.resume()
    assert response.status_code in (200, 302), response.content
    assert elapsed < 1.0, f"the approval waited {elapsed:.1f} s on the hung broker"
    change.refresh_from_db()
    assert change.status == Change.Status.QUEUED
    assert change.callback_deliveries.count() == 1
