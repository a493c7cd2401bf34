"""Agents learn the outcome: decisions are POSTed, signed, to the agent's callback URL by a
Celery task, retried with back-off, every attempt recorded. Only a loopback server is used."""

from __future__ import annotations

import json

import pytest

from approvals.agents import callbacks
from approvals.models import CallbackDelivery, Change, Event
from approvals.review import services
from approvals.tasks import deliver_decision_task
from countersign.outbox import dispatcher
from countersign.outbox.models import Dispatch
from tests.conftest import run_dispatched
from tests.factories import propose_waiting
from tests.receiver import signed_ok

D = CallbackDelivery.State


@pytest.fixture
def hooked_agent(agent, receiver):
    secret = agent.set_callback(receiver.url)
    agent.save()
    return agent, secret


def test_a_decision_is_posted_signed(api, ticket, support, hooked_agent, receiver, django_capture_on_commit_callbacks):
    agent, secret = hooked_agent
    change = propose_waiting(api, ticket)
    with django_capture_on_commit_callbacks() as pending:
        services.reject_change(change=change, user=support, reason="Wrong customer")
    delivery = CallbackDelivery.objects.get(change=change)
    assert delivery.state == D.PENDING and len(pending) == 1  # enqueued only after commit

    deliver_decision_task.apply(args=[delivery.pk])
    ((headers, body),) = receiver.received
    assert signed_ok(secret, headers, body)
    payload = json.loads(body)
    assert payload["decision"] == "rejected" and payload["reason"] == "Wrong customer"
    assert payload["change"] == change.pk and payload["delivery"] == delivery.pk
    assert payload["decided_by"] == "sam"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (D.DELIVERED, 1, 200)
    assert (
        Event.objects.filter(change=change, kind=Event.Kind.CALLBACK)
        .get()
        .message.startswith("system (callbacks): delivered the decision")
    )


def test_an_approval_with_corrections_is_posted(api, ticket, support, hooked_agent, receiver):
    change = propose_waiting(api, ticket)
    services.approve_change(change=change, user=support, values={"tags": "refunds"})
    delivery = CallbackDelivery.objects.get(change=change)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    payload = json.loads(receiver.received[0][1])
    assert payload["decision"] == "approved"
    assert payload["values"] == {"tags": "billing"} and payload["edited_values"] == {"tags": "refunds"}
    assert payload["approvals"] == [{"reviewer": "sam", "at": payload["approvals"][0]["at"], "edited": True}]


def test_a_partial_approval_is_not_a_decision(api, ticket, support, hooked_agent):
    change = propose_waiting(api, ticket)
    Change.objects.filter(pk=change.pk).update(approvals_required=2)
    services.approve_change(change=change, user=support)
    assert not CallbackDelivery.objects.exists()


def test_failures_are_retried_with_back_off_until_delivered(api, ticket, support, hooked_agent, receiver, settings):
    receiver.statuses = [500, 503, 200]
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    # Each attempt that fails hands the next one to the workers for later; here they run at once, in order.
    ran = run_dispatched(callbacks.DELIVER_TASK)
    waits = [round((d.due_at - d.created_at).total_seconds()) for d in ran[1:]]
    delivery.refresh_from_db()
    assert delivery.state == D.DELIVERED and delivery.attempts == 3
    base = settings.CALLBACK_RETRY_BASE_SECONDS
    assert waits == [base, base * 2]
    assert [entry["status"] for entry in delivery.log] == [500, 503, 200]
    assert len(receiver.received) == 3
    # Every attempt carries the same signed body.
    assert len({body for _, body in receiver.received}) == 1


def test_it_gives_up_after_the_last_attempt(api, ticket, support, hooked_agent, receiver, settings):
    settings.CALLBACK_MAX_ATTEMPTS = 2
    receiver.statuses = [500]
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    run_dispatched(callbacks.DELIVER_TASK)  # each attempt, and the next it hands over
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (D.FAILED, 2, 500)
    event = Event.objects.get(change=change, kind=Event.Kind.CALLBACK)
    assert "could not be given the decision" in event.message and "read it from the API" in event.message


def test_a_refusal_is_not_retried(api, ticket, support, hooked_agent, receiver):
    receiver.statuses = [404]
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    deliver_decision_task.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (D.FAILED, 1)


def test_an_unreachable_callback_is_retried(api, ticket, support, agent, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    agent.set_callback("http://127.0.0.1:9/nobody-listens")
    agent.save()
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    attempt = callbacks.deliver_decision(delivery_id=delivery.pk)
    assert attempt.retry_in is not None
    delivery.refresh_from_db()
    assert delivery.state == D.PENDING and delivery.last_status_code is None
    assert delivery.last_error == "the receiver refused the connection (nothing listens there)"


def test_running_an_attempt_twice_posts_once(api, ticket, support, hooked_agent, receiver):
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    assert len(receiver.received) == 1


def test_lost_deliveries_are_enqueued_again(api, ticket, support, hooked_agent, memory_broker):
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    assert dispatcher.sweep()["requeued"] == 0
    from datetime import timedelta

    from django.utils import timezone

    Dispatch.objects.update(due_at=timezone.now() - timedelta(minutes=5))
    sent = [m["args"][0] for m in memory_broker.published() if m["task"] == callbacks.DELIVER_TASK]
    assert dispatcher.sweep()["requeued"] == 1
    sent += [m["args"][0] for m in memory_broker.published() if m["task"] == callbacks.DELIVER_TASK]
    assert sent == [CallbackDelivery.objects.get().pk]


def test_the_agent_registers_its_callback_and_sees_deliveries(api, agent, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # an operator's internal receiver
    response = api.client.put(
        "/api/v1/callback", data=json.dumps({"url": "http://127.0.0.1:8999/hook"}), content_type="application/json"
    )
    assert response.status_code == 200
    secret = response.json()["secret"]
    agent.refresh_from_db()
    assert agent.callback_url == "http://127.0.0.1:8999/hook" and agent.callback_secret == secret
    shown = api.get("/api/v1/callback").json()
    assert shown == {"url": "http://127.0.0.1:8999/hook", "secret": None, "deliveries": {}}


def test_a_callback_url_must_be_http(api):
    response = api.client.put(
        "/api/v1/callback", data=json.dumps({"url": "file:///etc/passwd"}), content_type="application/json"
    )
    assert response.status_code == 422


def test_delivery_status_shows_on_the_change_page(api, ticket, support, hooked_agent, receiver, client):
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    callbacks.deliver_decision(delivery_id=CallbackDelivery.objects.get().pk)
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Telling the agent" in page and "delivered" in page and "HTTP 200" in page


def test_admins_see_delivery_status(api, ticket, support, hooked_agent, receiver, client, admin_user):
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    callbacks.deliver_decision(delivery_id=CallbackDelivery.objects.get().pk)
    client.force_login(admin_user)
    page = client.get("/admin/approvals/callbackdelivery/").content.decode()
    assert f"change {change.pk} ({change.operation_id})" in page and "delivered" in page


def test_setting_a_callback_url_in_the_admin_shows_a_new_secret_once(client, admin_user, agent, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    client.force_login(admin_user)
    form = {
        "name": agent.name,
        "version": agent.version,
        "record_types": '["ticket"]',
        "is_active": "on",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "callback_url": "http://127.0.0.1:8999/hook",
        "workflows": [],
    }
    response = client.post(f"/admin/approvals/agent/{agent.pk}/change/", form, follow=True)
    agent.refresh_from_db()
    assert agent.callback_url == "http://127.0.0.1:8999/hook" and agent.callback_secret.startswith("whsec_")
    assert f"Callback secret for {agent} (shown once): {agent.callback_secret}" in response.content.decode()


def test_removing_the_callback_stops_pending_retries(api, ticket, support, hooked_agent, receiver):
    # Found by trying it: after DELETE /callback, 250 queued deliveries kept going to the old URL.
    receiver.statuses = [503]
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    assert len(receiver.received) == 1

    assert api.client.delete("/api/v1/callback").status_code == 204
    delivery.refresh_from_db()
    assert delivery.state == D.FAILED and delivery.last_error == "not sent: the agent removed its callback URL"
    callbacks.deliver_decision(delivery_id=delivery.pk)  # a retry already in the broker
    assert len(receiver.received) == 1


def test_a_retry_goes_to_the_url_the_agent_names_now(api, ticket, support, hooked_agent, receiver, settings):
    receiver.statuses = [503, 200]
    agent, _ = hooked_agent
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    moved = receiver.url.rstrip("/") + "/v2"
    secret = api.client.put(
        "/api/v1/callback", data=json.dumps({"url": moved}), content_type="application/json"
    ).json()["secret"]
    callbacks.deliver_decision(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == D.DELIVERED and delivery.url == moved
    headers, body = receiver.received[-1]
    assert signed_ok(secret, headers, body)
