"""A change's page says what the change did: a written change (applied, undone) from its
history row, a waiting one from the record as it is now; every callback attempt is listed."""

from __future__ import annotations

from approvals.agents import callbacks
from approvals.apply.services import apply_changes
from approvals.models import CallbackDelivery, Change
from approvals.review import services
from demo.models import Ticket
from tests.factories import ticket_change

S = Change.Status


def post(api, body, run="r-1"):
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": run, **body})
    assert response.status_code == 201, response.content
    return Change.objects.get(pk=response.json()["id"])


def resolve(ticket, operation_id="resolve", **overrides):
    body = ticket_change(ticket, operation_id, **overrides)
    return {**body, "records": [{"id": ticket.pk, "expected": {"status": "open"}}], "values": {"status": "resolved"}}


def test_an_applied_change_reads_as_what_it_wrote(api, ticket, support, client):
    change = post(api, resolve(ticket))
    apply_changes(change_ids=[change.pk])
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "from open to resolved" in page
    assert "from resolved to resolved" not in page
    assert "changed since the agent looked" not in page
    assert '<th scope="col">before</th><th scope="col">written</th>' in page
    # The run page says the same.
    assert "from open to resolved" in client.get(f"/runs/{change.run_id}/").content.decode()


def test_an_undone_change_reads_as_what_it_wrote(api, ticket, support, client):
    change = post(api, resolve(ticket))
    apply_changes(change_ids=[change.pk])
    client.force_login(support)
    response = client.post(f"/runs/{change.run_id}/undo", {"change": [change.pk]})
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.status == S.UNDONE
    ticket.refresh_from_db()
    ticket.status = "pending"  # a person moved the record on since
    ticket.save()
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "from open to resolved" in page and "changed since the agent looked" not in page


def test_a_waiting_change_still_warns_that_the_record_moved(api, ticket, support, client):
    change = post(api, resolve(ticket, risk=0.9))
    ticket.status = "pending"
    ticket.save()
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "from pending to resolved" in page
    assert "The record changed since the agent looked: its status is now pending; the agent saw open" in page
    assert '<th scope="col">now</th><th scope="col">proposed</th>' in page


def test_an_applied_create_links_the_record_it_made(api, ticket, support, client):
    body = {
        "operation_id": "new-ticket",
        "record_type": "ticket",
        "operation": "create",
        "values": {"customer": ticket.customer_id, "subject": "Refund asked by phone"},
        "risk": 0.1,
        "confidence": 0.9,
    }
    change = post(api, body)
    apply_changes(change_ids=[change.pk])
    made = Ticket.objects.get(subject="Refund asked by phone")
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert f'<a class="record-link" href="/records/ticket/{made.pk}/">made ticket #{made.pk}</a>' in page
    # The record's page lists the change that made it.
    record_page = client.get(f"/records/ticket/{made.pk}/changes/", follow=True).content.decode()
    assert "No agent has proposed a change to it" not in record_page
    assert f'href="/changes/{change.pk}/">change #{change.pk}</a>' in record_page
    customer = f"{ticket.customer.name} (customer #{ticket.customer_id})"
    assert f"create a ticket with {customer}, subject Refund asked by phone" in record_page


def test_every_callback_attempt_shows_on_the_change_page(api, ticket, support, agent, client, receiver):
    receiver.statuses = [503, 200]
    agent.set_callback(receiver.url)
    agent.save()
    change = post(api, resolve(ticket, risk=0.9))
    services.reject_change(change=change, user=support, reason="not yet")
    delivery = CallbackDelivery.objects.get(change=change)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "attempt 1" in page and "HTTP 503" in page
    assert "attempt 2" in page and "HTTP 200" in page
