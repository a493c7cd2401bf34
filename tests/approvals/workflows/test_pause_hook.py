"""The pause address: an alerting tool POSTs to a workflow's secret URL to pause it; operators make
(and remake) the address on the workflow's page, shown once."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from approvals.models import Change, Event, Workflow
from tests.factories import make_tickets, make_workflow, ticket_change

S = Change.Status


@pytest.fixture
def token(workflow):
    token = workflow.set_pause_hook()
    workflow.save(update_fields=["pause_hook_hash", "pause_hook_prefix"])
    return token


def hook(token, body=None, content_type="application/json", method="post"):
    client = Client(enforce_csrf_checks=True)  # an alerting tool has no CSRF token
    data = json.dumps(body) if isinstance(body, dict) else (body or "")
    return getattr(client, method)(f"/hooks/pause/{token}/", data=data, content_type=content_type)


def footprint():
    return (Event.objects.count(), list(Workflow.objects.values_list("state", "pause_reason")))


def test_the_hook_pauses_the_workflow_and_holds_what_was_queued(api, workflow, token):
    posted = api.post(
        "/api/v1/changes/batch",
        {
            "workflow": "ticket-triage",
            "run": "r-1",
            "changes": [ticket_change(t, f"op-{t.pk}") for t in make_tickets(2)],
        },
    )
    ids = [c["id"] for c in posted.json()["changes"]]

    response = hook(token, {"reason": "error rate above 5%"})

    assert response.status_code == 200, response.content
    body = response.json()
    prefix = workflow.pause_hook_prefix
    assert body["workflow"] == "ticket-triage" and body["state"] == "paused" and body["already_paused"] is False
    assert body["paused_by"] == f"system (alerting hook {prefix}…)"
    assert body["reason"] == "error rate above 5%" and body["paused_at"]
    assert body["message"] == "Paused ticket-triage: 2 queued changes held. New proposals are recorded and held."
    assert body["page"] == "http://testserver/workflows/ticket-triage/"
    workflow.refresh_from_db()
    assert workflow.is_paused and workflow.pause_reason == "error rate above 5%"
    assert set(Change.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.HELD}
    event = Event.objects.get(kind=Event.Kind.PAUSED)
    assert event.message.startswith(
        f"system (alerting hook {prefix}…): paused workflow ticket-triage: error rate above 5%."
    )
    assert event.details["pause_address"] == prefix and token not in json.dumps(event.details)


def test_a_form_body_and_no_body_pause_too(workflow, token):
    response = hook(token, "reason=disk+full", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["reason"] == "disk full"
    Workflow.objects.filter(pk=workflow.pk).update(state=Workflow.State.RUNNING)
    other = make_workflow("refund-bot")
    other_token = other.set_pause_hook()
    other.save()
    response = hook(other_token)
    assert response.status_code == 200 and response.json()["reason"] == "the alerting tool gave no reason"


def test_calling_it_again_answers_already_paused_and_writes_nothing(workflow, token):
    first = hook(token, {"reason": "first alert"}).json()
    before = footprint()
    again = hook(token, {"reason": "second alert"})
    assert again.status_code == 200
    body = again.json()
    assert body["already_paused"] is True and body["state"] == "paused"
    assert body["reason"] == "first alert" and body["paused_at"] == first["paused_at"]
    assert body["message"] == f"ticket-triage was already paused by {first['paused_by']} (first alert)."
    assert footprint() == before
    assert Event.objects.filter(kind=Event.Kind.PAUSED).count() == 1


@pytest.mark.parametrize("wrong", ["ph_nope", "nope", "ph_" + "A" * 43, "ph_%00"])
def test_a_wrong_secret_is_404_and_writes_nothing(workflow, token, wrong):
    before = footprint()
    response = hook(wrong, {"reason": "x"})
    assert response.status_code == 404
    assert response.json() == {"detail": "No such pause address"}
    assert footprint() == before
    assert not Workflow.objects.get(pk=workflow.pk).is_paused


def test_a_bad_body_with_a_wrong_secret_still_says_only_404(workflow, token):
    assert hook("ph_nope", "{not json").json() == {"detail": "No such pause address"}


def test_a_remade_address_retires_the_old_one(client, operator, workflow, token):
    client.force_login(operator)
    page = client.post("/workflows/ticket-triage/pause-address/")
    assert page.status_code == 200
    new = re.search(r"/hooks/pause/(ph_[\w-]+)/", page.content.decode()).group(1)
    assert new != token
    before = footprint()
    assert hook(token).status_code == 404
    assert footprint() == before
    assert hook(new).status_code == 200


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        ({"reason": "x" * 501}, "application/json", 422),
        ({"reason": "bell\x07"}, "application/json", 422),
        ({"reason": "\u202eevil"}, "application/json", 422),
        ({"reason": 5}, "application/json", 422),
        ('{"reason": "\\ud800"}', "application/json", 422),
        ("[1, 2]", "application/json", 422),
        ("{not json", "application/json", 422),
        (b'{"reason": "\xff"}', "application/json", 422),
        ("reason=%FF", "application/x-www-form-urlencoded", 422),
        ("reason=a%00b", "application/x-www-form-urlencoded", 422),
        ("reason: x", "text/plain", 415),
        ({"reason": "x" * 20000}, "application/json", 413),
    ],
)
def test_a_bad_body_is_refused_plainly_and_pauses_nothing(workflow, token, body, content_type, status):
    before = footprint()
    response = hook(token, body, content_type=content_type)
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".")
    assert footprint() == before


def test_the_longest_reason_is_taken_and_an_alerting_tools_other_keys_are_ignored(workflow, token):
    response = hook(token, {"reason": "y" * 500, "alerts": [{"status": "firing"}], "title": "[FIRING:1]"})
    assert response.status_code == 200 and response.json()["reason"] == "y" * 500


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405(workflow, token, method):
    response = hook(token, method=method)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert not Workflow.objects.get(pk=workflow.pk).is_paused


# The operators' side -------------------------------------------------------------------------


def test_an_operator_makes_an_address_shown_once_with_the_curl_line(client, operator, workflow):
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/pause-address/")
    text = response.content.decode()
    token = re.search(r"/hooks/pause/(ph_[\w-]+)/", text).group(1)
    workflow.refresh_from_db()
    assert (
        workflow.pause_hook_prefix == token[:10] and workflow.pause_hook_hash and token not in workflow.pause_hook_hash
    )
    assert "Shown once" in text and "make a new one" in text
    assert "curl -X POST -H &#x27;Content-Type: application/json&#x27;" in text
    assert f"http://testserver/hooks/pause/{token}/" in text
    assert response["Cache-Control"].startswith("max-age=0")
    event = Event.objects.get(kind=Event.Kind.RUNBOOK_CHANGED)
    assert event.actor == operator and event.workflow == workflow
    assert event.message.startswith(f"otto: made a new pause address for workflow ticket-triage ({token[:10]}…)")
    assert token not in event.message and token not in json.dumps(event.details)
    # Made again: the event says the old one is retired.
    again = client.post("/workflows/ticket-triage/pause-address/")
    assert again.status_code == 200
    assert f"the old one ({token[:10]}…) no longer pauses it" in Event.objects.last().message


def test_only_operators_and_admins_make_one(client, reviewer, outsider, workflow):
    client.force_login(reviewer)
    refused = client.post("/workflows/ticket-triage/pause-address/")
    assert refused.status_code == 403 and "Only operators and admins pause" in refused.content.decode()
    client.force_login(outsider)
    assert client.post("/workflows/ticket-triage/pause-address/").status_code == 404
    assert not Workflow.objects.get(pk=workflow.pk).pause_hook_hash
    assert not Event.objects.exists()


def test_the_pause_address_section_names_the_prefix_never_the_token(rf, operator, reviewer, workflow, token):
    from django.template.loader import render_to_string

    request = rf.get("/")
    request.user = operator
    text = render_to_string("approvals/workflows/_pause_hook.html", {"workflow": workflow, "may_pause": True}, request)
    assert f"/hooks/pause/{workflow.pause_hook_prefix}…/" in text and token not in text
    assert "Make a new pause address" in text
    text = render_to_string("approvals/workflows/_pause_hook.html", {"workflow": workflow, "may_pause": False}, request)
    assert "<form" not in text
    fresh = make_workflow("refund-bot")
    text = render_to_string("approvals/workflows/_pause_hook.html", {"workflow": fresh, "may_pause": True}, request)
    assert "has no pause address" in text and "Make a pause address" in text


def test_a_multipart_form_is_read_too(workflow, token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/hooks/pause/{token}/", {"reason": "from curl -F"})
    assert response.status_code == 200 and response.json()["reason"] == "from curl -F"
