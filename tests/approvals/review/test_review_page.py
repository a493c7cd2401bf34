"""The review page: who sees what, plain words, approve, reject with a reason, races —
as plain forms (no JavaScript) and with htmx (the item answered in place)."""

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
    assert "risk 0.90" in text and "confidence 0.90" in text
    # Agent text is untrusted: escaped, never executed.
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    # Why it waits, the run and the record, linked.
    assert "Held for support review" in text
    assert f'href="/runs/{waiting.run_id}/"' in text
    assert f'href="/records/ticket/{ticket.pk}/"' in text
    assert response["Vary"] and "HX-Request" in response["Vary"]
    assert "waiting less than a minute" in text  # not "waiting 0 minutes"


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


def test_with_htmx_it_answers_the_decided_item(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/approve", HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith(f'<article class="card change decided" id="change-{waiting.pk}"')
    assert f"Approved change {waiting.pk}: a worker applies it." in text
    assert "Approved by sam." in text
    assert 'data-action="approve"' not in text  # nothing left to click


def test_approve_rejects_get(client, support, waiting):
    client.force_login(support)
    assert client.get(f"/changes/{waiting.pk}/approve").status_code == 405


def test_it_rejects_with_a_reason_the_agent_reads(client, support, waiting, api):
    client.force_login(support)
    client.post(f"/changes/{waiting.pk}/reject", {"reason": "Wrong customer"})
    waiting.refresh_from_db()
    assert waiting.status == S.REJECTED
    body = api.get(f"/api/v1/changes/{waiting.pk}").json()
    assert body["reject_reason"] == "Wrong customer" and body["approver"] == "sam" and body["decided_at"]
    assert body["review"] == "rejected"


def test_a_reject_without_reason_changes_nothing(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/reject", {"reason": "  "}, follow=True)
    assert "Say why you reject" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW


def test_with_htmx_a_missing_reason_is_a_422_with_the_error(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/reject", {"reason": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    text = response.content.decode()
    assert "Say why you reject the change: the agent reads the reason." in text
    assert 'data-action="reject"' in text  # the form is still there to fill in
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW


def test_an_outsider_cannot_approve_nor_learn_the_change_exists(client, outsider, waiting):
    client.force_login(outsider)
    response = client.post(f"/changes/{waiting.pk}/approve")
    assert response.status_code == 404
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW


def test_one_who_sees_the_change_but_may_not_review_it_is_told_why(client, operator, waiting):
    client.force_login(operator)
    response = client.post(f"/changes/{waiting.pk}/approve", follow=True)
    assert "not in the support group" in response.content.decode()
    response = client.post(f"/changes/{waiting.pk}/approve", HTTP_HX_REQUEST="true")
    assert response.status_code == 403 and "not in the support group" in response.content.decode()
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


def test_with_htmx_the_second_decision_is_a_409_with_the_current_state(client, support, reviewer, waiting):
    client.force_login(support)
    client.post(f"/changes/{waiting.pk}/approve")
    client.force_login(reviewer)
    response = client.post(f"/changes/{waiting.pk}/reject", {"reason": "no"}, HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert response.status_code == 409
    assert f"Someone else decided change {waiting.pk} first (approved by sam): it is already queued." in text
    assert '<span class="badge queued">queued</span>' in text


def test_next_cannot_redirect_off_site(client, support, waiting):
    client.force_login(support)
    response = client.post(f"/changes/{waiting.pk}/approve", {"next": "https://evil.example/"})
    assert response["Location"] == "/review/"


def test_the_dashboard_counts_per_workflow(client, support, waiting):
    client.force_login(support)
    response = client.get("/")
    assert response.context["workflows"][0].waiting == 1
