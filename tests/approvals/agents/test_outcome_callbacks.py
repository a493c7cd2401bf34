"""The agent learns every outcome of its change, not only the decision: applied (with the
records written, a create's new id among them), failed, conflict, undone, put back. Through a
signed callback to a real receiver on 127.0.0.1, and through the API."""

from __future__ import annotations

import json

import pytest

from approvals.agents import callbacks
from approvals.apply.services import apply_changes
from approvals.models import CallbackDelivery, Change
from approvals.review import services
from approvals.tasks import deliver_callbacks_task
from countersign.outbox import dispatcher
from demo.models import Ticket
from tests.factories import propose_waiting, ticket_change
from undo.models import Undo

S = Change.Status


@pytest.fixture
def hooked(agent, receiver):
    agent.set_callback(receiver.url)
    agent.save()
    return agent


def post(api, body, run="r-1"):
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": run, **body})
    assert response.status_code == 201, response.content
    return Change.objects.get(pk=response.json()["id"])


def create_ticket(api, ticket, operation_id="new-ticket"):
    body = {
        "operation_id": operation_id,
        "record_type": "ticket",
        "operation": "create",
        "values": {"customer": ticket.customer_id, "subject": "Refund asked by phone"},
        "risk": 0.1,
        "confidence": 0.9,
    }
    return post(api, body)


def told(receiver) -> list[dict]:
    """What the agent heard, in order, after every pending delivery was attempted."""
    for delivery in CallbackDelivery.objects.filter(state=CallbackDelivery.State.PENDING).order_by("id"):
        callbacks.deliver_decision(delivery_id=delivery.pk)
    return [json.loads(body) for _, body in receiver.received]


def test_the_api_shows_the_record_a_create_made(api, ticket):
    change = create_ticket(api, ticket)
    assert api.get(f"/api/v1/changes/{change.pk}").json()["record_ids"] == []
    apply_changes(change_ids=[change.pk])
    made = Ticket.objects.get(subject="Refund asked by phone")
    shown = api.get(f"/api/v1/changes/{change.pk}").json()
    assert (shown["status"], shown["record_ids"]) == ("applied", [made.pk])


def test_the_agent_is_told_a_create_was_applied_with_the_new_id(api, ticket, hooked, receiver):
    change = create_ticket(api, ticket)
    apply_changes(change_ids=[change.pk])
    made = Ticket.objects.get(subject="Refund asked by phone")
    (payload,) = told(receiver)
    assert (payload["change"], payload["outcome"], payload["status"]) == (change.pk, "applied", "applied")
    assert payload["record_ids"] == [made.pk] and payload["decision"] == "approved"
    assert payload["applied_at"] is not None


def test_the_agent_is_told_of_the_decision_then_of_the_apply(api, ticket, support, hooked, receiver):
    change = propose_waiting(api, ticket)
    services.approve_change(change=change, user=support)
    apply_changes(change_ids=[change.pk])
    decided, applied = told(receiver)
    assert (decided["outcome"], decided["decided_by"]) == ("approved", "sam")
    assert (applied["outcome"], applied["record_ids"], applied["decided_by"]) == ("applied", [ticket.pk], "sam")
    assert decided["delivery"] != applied["delivery"]


def test_the_agent_is_told_of_a_conflict(api, ticket, hooked, receiver):
    change = post(api, ticket_change(ticket))
    ticket.tags = "vip"
    ticket.save()
    apply_changes(change_ids=[change.pk])
    (payload,) = told(receiver)
    assert (payload["outcome"], payload["status"]) == ("conflict", "conflict")
    assert "tags is now vip" in payload["error"]


def test_the_agent_is_told_of_a_failure(api, ticket, hooked, receiver):
    change = post(api, ticket_change(ticket))
    Ticket.objects.filter(pk=ticket.pk).delete()
    apply_changes(change_ids=[change.pk])
    (payload,) = told(receiver)
    assert payload["outcome"] == "failed" and "no longer exists" in payload["error"]


def test_the_agent_is_told_its_changes_were_undone_and_put_back(
    api, ticket, support, hooked, receiver, client, django_capture_on_commit_callbacks
):
    second = Ticket.objects.create(customer=ticket.customer, subject="Second", status="open")
    changes = [post(api, ticket_change(t, f"op-{t.pk}")) for t in (ticket, second)]
    apply_changes(change_ids=[c.pk for c in changes])
    assert [p["outcome"] for p in told(receiver)] == ["applied", "applied"]
    receiver.received.clear()

    client.force_login(support)
    with django_capture_on_commit_callbacks() as pending:
        response = client.post(f"/runs/{changes[0].run_id}/undo")
    assert response.status_code == 302
    # Many deliveries are handed to the workers in batches, not one task each.
    handed = [c.args[0] for c in pending if getattr(c, "func", None) is dispatcher.publish_soon]
    assert len([rows for rows in handed if rows[0].task == callbacks.DELIVER_MANY_TASK]) == 1
    undone = told(receiver)
    assert sorted((p["change"], p["outcome"], p["status"]) for p in undone) == [
        (changes[0].pk, "undone", "undone"),
        (changes[1].pk, "undone", "undone"),
    ]
    assert {p["record_ids"][0] for p in undone} == {ticket.pk, second.pk}
    receiver.received.clear()

    undo = Undo.objects.get()
    assert client.post(f"/undos/{undo.pk}/redo").status_code == 302
    assert sorted((p["change"], p["outcome"], p["status"]) for p in told(receiver)) == [
        (changes[0].pk, "redone", "applied"),
        (changes[1].pk, "redone", "applied"),
    ]


def test_a_batch_of_deliveries_is_attempted_by_one_task(api, ticket, support, hooked, receiver):
    second = Ticket.objects.create(customer=ticket.customer, subject="Second", status="open")
    changes = [post(api, ticket_change(t, f"op-{t.pk}")) for t in (ticket, second)]
    apply_changes(change_ids=[c.pk for c in changes])
    ids = list(CallbackDelivery.objects.order_by("id").values_list("pk", flat=True))
    deliver_callbacks_task.apply(args=[ids])
    assert len(receiver.received) == 2
    assert set(CallbackDelivery.objects.values_list("state", flat=True)) == {CallbackDelivery.State.DELIVERED}


def test_an_agent_without_a_callback_gets_no_deliveries(api, ticket):
    change = post(api, ticket_change(ticket))
    apply_changes(change_ids=[change.pk])
    assert not CallbackDelivery.objects.exists()
