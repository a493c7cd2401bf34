"""The minimal review page: who sees what, approve, reject with a reason, races."""

from __future__ import annotations

import pytest

from approvals.models import Change, Event
from tests.factories import ticket_change

S = Change.Status


@pytest.fixture
def waiting(api, ticket):
    body = {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket, risk=0.9)}
    body["reasoning"] = "<script>alert('x')</script> customer asked"
    response = api.post("/api/v1/changes", body)
    assert response.json()["status"] == "pending_review"
    return Change.objects.get()


def test_it_shows_waiting_changes_in_plain_words(client, support, waiting, ticket):
    client.force_login(support)
    response = client.get("/review/")
    text = response.content.decode()
    assert f"Change the tags of ticket #{ticket.pk}" in text
    assert "from (empty) to billing" in text
    assert "risk 0.90" in text
    # Agent text is untrusted: escaped, never executed.
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text


def test_it_hides_other_groups_changes(client, finance, waiting):
    client.force_login(finance)
    assert "Change the tags" not in client.get("/review/").content.decode()


def test_it_requires_login(client, waiting):
    response = client.get("/review/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_it_approves(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/approve", {"next": "/review/"})
    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == S.QUEUED and waiting.approver == support
    moves = list(Event.objects.filter(change=waiting).values_list("to_status", "actor_label"))
    assert moves[-2:] == [("approved", "sam"), ("queued", "sam")]


def test_approve_rejects_get(client, support, waiting):
    client.force_login(support)
    assert client.get(f"/changes/{waiting.pk}/approve").status_code == 405


def test_it_rejects_with_a_reason_the_agent_reads(client, support, waiting, api):
    client.force_login(support)
    client.post(f"/changes/{waiting.pk}/reject", {"reason": "Wrong customer"})
    waiting.refresh_from_db()
    assert waiting.status == S.REJECTED
    assert api.get(f"/api/v1/changes/{waiting.pk}").json()["reject_reason"] == "Wrong customer"


def test_a_reject_without_reason_changes_nothing(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/reject", {"reason": "  "}, follow=True)
    assert "Say why you reject" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW


def test_an_outsider_cannot_approve(client, outsider, waiting):
    client.force_login(outsider)
    response = client.post(f"/changes/{waiting.pk}/approve", follow=True)
    assert "not in the support group" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW


def test_the_second_decision_gets_a_clear_message(client, support, reviewer, waiting):
    client.force_login(support)
    client.post(f"/changes/{waiting.pk}/approve")
    client.force_login(reviewer)
    response = client.post(f"/changes/{waiting.pk}/reject", {"reason": "no"}, follow=True)
    assert "already" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == S.QUEUED
    assert not Event.objects.filter(change=waiting, to_status=S.REJECTED).exists()


def test_next_cannot_redirect_off_site(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/approve", {"next": "https://evil.example/"})
    assert response["Location"] == "/review/"


def test_the_dashboard_counts_per_workflow(client, support, waiting):
    client.force_login(support)
    response = client.get("/")
    assert response.context["workflows"][0].waiting == 1
