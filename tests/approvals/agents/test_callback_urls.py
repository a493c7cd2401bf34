"""A callback URL is a request Countersign makes on an agent's word: it may reach public
addresses only, checked when it is registered and again when each attempt connects, unless an
operator allows a network. No test here sends anything anywhere but 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from approvals.agents import callbacks
from approvals.models import CallbackDelivery
from approvals.review import services
from tests.factories import propose_waiting

D = CallbackDelivery.State


def register(api, url):
    return api.client.put("/api/v1/callback", data=json.dumps({"url": url}), content_type="application/json")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6390/",
        "http://localhost:6390/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0:8000/",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_internal_addresses_are_refused(api, agent, url):
    response = register(api, url)
    assert response.status_code == 422, url
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "url"]
    assert error["msg"].startswith("may not go to") and "CALLBACK_ALLOWED_NETWORKS" in error["msg"]
    agent.refresh_from_db()
    assert agent.callback_url == ""


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://user:pass@93.184.215.14/hook", "user name or password"),
        ("https://token@93.184.215.14/hook", "user name or password"),
        ("https://93.184.215.14/ho\x00ok", "control characters"),
        ("https://93.184.215.14/\u202egnp.exe", "control characters"),
        ("https://93.184.215.14/a b", "control characters"),
        ("ftp://93.184.215.14/hook", "http or https"),
        ("https://93.184.215.14:99999/hook", "http or https"),
    ],
)
def test_urls_that_hide_something_are_refused(api, url, said):
    response = register(api, url)
    assert response.status_code == 422, url
    assert said in response.json()["detail"][0]["msg"]


def test_a_public_address_is_accepted(api, agent):
    # An address literal: nothing is resolved or sent by registering.
    response = register(api, "https://93.184.215.14:8443/hooks/countersign?k=1")
    assert response.status_code == 200
    agent.refresh_from_db()
    assert agent.callback_url == "https://93.184.215.14:8443/hooks/countersign?k=1"


def test_an_operator_allows_an_internal_network(api, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert register(api, "http://10.20.3.4/hook").status_code == 200
    assert register(api, "http://10.21.3.4/hook").status_code == 422
    assert register(api, "http://127.0.0.1/hook").status_code == 422


def test_delivery_checks_the_address_again(api, ticket, support, agent, receiver, settings):
    """A name that pointed somewhere public at registration and points inside now (DNS
    rebinding) is refused when the attempt connects: nothing is sent, and no retry follows."""
    agent.set_callback(receiver.url.replace("127.0.0.1", "localhost"))
    agent.save()
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    settings.CALLBACK_ALLOWED_NETWORKS = []  # localhost resolves to loopback, as an internal name would
    delivery = CallbackDelivery.objects.get(change=change)
    attempt = callbacks.deliver_decision(delivery_id=delivery.pk)
    assert attempt.retry_in is None and receiver.received == []
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (D.FAILED, 1, None)
    assert "not sent" in delivery.last_error and "a loopback address" in delivery.last_error


def test_delivery_refuses_an_internal_address_stored_before_the_check(api, ticket, support, agent, receiver):
    # Registered before URLs were checked (or through the database): still never called. 0.0.0.0
    # reaches this machine, so were it called, the receiver (allowed on 127.0.0.1 only) would hear it.
    agent.set_callback(receiver.url.replace("127.0.0.1", "0.0.0.0"))
    agent.save()
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    delivery = CallbackDelivery.objects.get(change=change)
    callbacks.deliver_decision(delivery_id=delivery.pk)
    assert receiver.received == []
    delivery.refresh_from_db()
    assert delivery.state == D.FAILED and "an unspecified address" in delivery.last_error


def test_an_allowed_receiver_gets_its_callback(api, ticket, support, agent, receiver):
    assert register(api, receiver.url).status_code == 200
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    callbacks.deliver_decision(delivery_id=CallbackDelivery.objects.get(change=change).pk)
    assert len(receiver.received) == 1


def test_the_admin_refuses_an_internal_callback_url(client, admin_user, agent):
    client.force_login(admin_user)
    form = {
        "name": agent.name,
        "version": agent.version,
        "record_types": '["ticket"]',
        "is_active": "on",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "callback_url": "http://10.0.0.1/hook",
        "workflows": [],
    }
    response = client.post(f"/admin/approvals/agent/{agent.pk}/change/", form)
    assert (
        response.status_code == 200
        and "The callback URL may not go to 10.0.0.1: it is a private address" in response.content.decode()
    )
    agent.refresh_from_db()
    assert agent.callback_url == ""
