"""End to end: an agent posts over HTTP, a reviewer approves, a real Celery worker
process applies through a real Redis, and the record and its snapshot show it."""

from __future__ import annotations

import pytest
from countersign_client import Client

from approvals.models import Change
from countersign.outbox import dispatcher
from demo.models import Ticket
from tests.conftest import wait_until
from tests.factories import make_tickets, ticket_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_agent_posts_reviewer_approves_worker_applies(
    live_server, celery_worker_process, agent_and_token, ticket, support, client
):
    agent, token = agent_and_token
    api = Client(live_server.url, token=token)
    held = api.propose(workflow="ticket-triage", run="r-e2e", **ticket_change(ticket, "op-held", risk=0.9))
    assert held["status"] == "pending_review"

    others = make_tickets(5)
    batch = api.propose_batch(
        workflow="ticket-triage", run="r-e2e", changes=[ticket_change(t, f"op-{t.pk}") for t in others]
    )
    assert {c["status"] for c in batch["changes"]} == {"queued"}

    client.force_login(support)
    assert client.post(f"/changes/{held['id']}/approve").status_code == 302

    def all_applied():
        """every change of the run applied by the worker"""
        return api.run(batch["run"]["id"])["counts"] == {"applied": 6}

    wait_until(all_applied, timeout=30)
    ticket.refresh_from_db()
    assert ticket.tags == "billing"
    row = ticket.history.first()
    assert (row.cs_change_id, row.cs_agent_id, row.history_user) == (held["id"], agent.pk, support)
    assert Ticket.objects.filter(pk__in=[t.pk for t in others], tags="billing").count() == 5
    assert api.change(held["id"])["approver"] == "sam"


def test_changes_posted_while_redis_was_down_are_swept_to_the_worker(
    live_server, celery_worker_process, redis_server, agent_and_token, ticket, settings
):
    _, token = agent_and_token
    api = Client(live_server.url, token=token)
    redis_server.stop()
    try:
        posted = api.propose(workflow="ticket-triage", run="r-down", **ticket_change(ticket))
    finally:
        redis_server.start()
    assert posted["status"] == "queued"
    settings.REQUEUE_AFTER_SECONDS = 0
    assert dispatcher.sweep()["requeued"] == 1

    def applied():
        """the swept change applied by the worker, reconnected to the restarted Redis"""
        return Change.objects.get(pk=posted["id"]).status == Change.Status.APPLIED

    wait_until(applied, timeout=45)
