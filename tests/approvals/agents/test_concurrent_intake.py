"""Idempotency under concurrency: fifty identical posts at once create exactly one change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from countersign_client import ApiError, Client

from approvals.models import Change, Event, Run
from tests.factories import ticket_change


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_identical_posts_create_one_change(live_server, agent_and_token, ticket):
    _, token = agent_and_token
    client = Client(live_server.url, token=token, timeout=60)
    body = ticket_change(ticket, operation_id="same-op")

    def post(_):
        return client.propose(workflow="ticket-triage", run="r-race", **body)["id"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(post, range(50)))
    assert len(set(ids)) == 1
    assert Change.objects.count() == 1
    assert Run.objects.count() == 1
    assert Event.objects.filter(change_id=ids[0], to_status="auto_approved").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_different_bodies_get_one_winner_and_409s(live_server, agent_and_token, ticket):
    _, token = agent_and_token
    client = Client(live_server.url, token=token, timeout=60)

    def post(i):
        body = ticket_change(ticket, operation_id="same-op", values={"tags": f"tag{i % 2}"})
        try:
            return client.propose(workflow="ticket-triage", run="r-race", **body)["values"]["tags"]
        except ApiError as exc:
            assert exc.status == 409
            return "409"

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(post, range(20)))
    winner = Change.objects.get().values["tags"]
    assert set(results) == {winner, "409"}
