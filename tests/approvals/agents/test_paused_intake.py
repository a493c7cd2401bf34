"""Proposals to a paused workflow: recorded, routed by the rules, held, and answered 202 with a sentence
saying who paused it, since when and why."""

from __future__ import annotations

import pytest
from countersign_client import Client
from django.contrib.auth.models import Group, User
from django.utils import timezone

from approvals.lifecycle import Actor
from approvals.models import Change, Event, Workflow
from approvals.workflows.services import pause_workflow
from tests.factories import make_tickets, ticket_change

S = Change.Status


@pytest.fixture
def paused(workflow):
    maya = User.objects.create_user("maya")
    maya.groups.add(Group.objects.get_or_create(name="operators")[0])
    pause_workflow(workflow=workflow, actor=Actor.person(maya), reason="tags look wrong")
    workflow.refresh_from_db()
    return workflow


def since(workflow) -> str:
    return f"{timezone.localtime(workflow.paused_at):%H:%M}"


def test_a_held_proposal_is_202_with_a_plain_sentence(api, paused, ticket):
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "held" and body["decision"] == "auto_apply"
    assert body["message"] == (
        f"Held: workflow ticket-triage is paused (by maya since {since(paused)}: tags look wrong). "
        "The change is recorded; the rules' decision is kept and it is routed again when it is resumed."
    )
    # The rules ran: the explanation says what they decided.
    assert "(rule 'below the review threshold')" in body["explanation"]
    change = Change.objects.get(pk=body["id"])
    assert change.status == S.HELD
    assert Event.objects.filter(change=change, to_status=S.HELD).exists()
    # The same proposal again: 200, already stored, and still held.
    again = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)})
    assert again.status_code == 200 and again.json()["message"] == body["message"]


def test_a_proposal_the_rules_send_to_review_is_201_as_ever(api, paused, ticket):
    body = {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket, risk=0.9)}
    response = api.post("/api/v1/changes", body)
    assert response.status_code == 201 and response.json()["status"] == "pending_review"
    assert response.json()["message"] is None


def test_a_batch_with_held_changes_is_202(api, paused):
    first, second = make_tickets(2)
    changes = [ticket_change(first, "low"), ticket_change(second, "high", risk=0.9)]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": changes})
    assert response.status_code == 202, response.content
    body = response.json()
    assert [c["status"] for c in body["changes"]] == ["held", "pending_review"]
    assert body["message"] == (
        f"Held: workflow ticket-triage is paused (by maya since {since(paused)}: tags look wrong). "
        "The change is recorded; the rules' decision is kept and it is routed again when it is resumed."
    )
    more = [ticket_change(t, f"more-{t.pk}") for t in make_tickets(2)]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-2", "changes": more})
    assert response.status_code == 202
    assert response.json()["message"].endswith(
        "The changes are recorded; the rules' decision is kept and they are routed again when it is resumed."
    )


def test_a_running_workflow_answers_201_without_a_message(api, workflow, ticket):
    changes = [ticket_change(ticket)]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": changes})
    assert response.status_code == 201 and response.json()["message"] is None


def test_the_schema_declares_202(client):
    schema = client.get("/api/v1/openapi.json").json()
    for path, out in (("/api/v1/changes", "ChangeOut"), ("/api/v1/changes/batch", "BatchOut")):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"200", "201", "202"} <= set(responses)
        assert responses["202"]["content"]["application/json"]["schema"]["$ref"].endswith(out)
        assert "paused" in schema["components"]["schemas"][out]["properties"]["message"]["description"]


@pytest.mark.django_db(transaction=True)
def test_the_python_client_takes_202_as_success_and_gives_the_message(live_server, agent_and_token, paused, ticket):
    client = Client(live_server.url, token=agent_and_token[1], timeout=30)
    change = client.propose(workflow="ticket-triage", run="r-1", **ticket_change(ticket))
    assert change["status"] == "held"
    assert change["message"].startswith("Held: workflow ticket-triage is paused (by maya since")
    batch = client.propose_batch(workflow="ticket-triage", run="r-2", changes=[ticket_change(ticket, "op-2")])
    assert batch["message"].startswith("Held: workflow ticket-triage is paused")


def test_a_pause_that_commits_while_a_proposal_is_checked_holds_it(api, workflow, ticket, monkeypatch):
    from approvals.agents import intake

    real = intake._load_records

    def pause_meanwhile(checked):
        # Another process pauses the workflow after intake read it, before intake stores.
        Workflow.objects.filter(pk=workflow.pk).update(
            state=Workflow.State.PAUSED, paused_by_label="maya", pause_reason="tags look wrong"
        )
        return real(checked)

    monkeypatch.setattr(intake, "_load_records", pause_meanwhile)
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)})
    assert response.status_code == 202 and response.json()["status"] == "held"
    assert response.json()["message"].startswith("Held: workflow ticket-triage is paused (by maya: tags look wrong).")
