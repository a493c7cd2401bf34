"""'Stop all agents': a confirmation that says what it does, then every running workflow paused."""

from __future__ import annotations

import pytest

from approvals.models import Event, Workflow
from tests.factories import make_workflow


@pytest.fixture
def workflows(db):
    make_workflow("ticket-triage")
    make_workflow("refund-bot")
    make_workflow("old-bot", state="paused", paused_by_label="maya", pause_reason="retired")


def test_the_confirmation_says_exactly_what_it_does(client, operator, workflows):
    client.force_login(operator)
    response = client.get("/workflows/stop-all/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "This pauses the 2 running workflows:" in page
    assert 'href="/workflows/refund-bot/">refund-bot</a>' in page and 'href="/workflows/ticket-triage/">' in page
    assert "Changes queued for the workers are held" in page
    assert "New proposals from agents are still recorded, and held." in page
    assert "Undo and review keep working" in page
    assert "Already paused, left as they are: old-bot." in page
    assert "Stop all 2 workflows" in page
    assert not Event.objects.exists()  # asking is not doing


def test_confirming_pauses_every_running_workflow(client, admin_user, workflows):
    client.force_login(admin_user)
    response = client.post("/workflows/stop-all/", {"reason": "incident 42"}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert "Stopped 2 workflows (refund-bot, ticket-triage); 0 queued changes held." in response.content.decode()
    assert set(Workflow.objects.values_list("state", flat=True)) == {"paused"}
    assert Workflow.objects.get(name="old-bot").pause_reason == "retired"  # left as it was
    assert Event.objects.filter(kind=Event.Kind.PAUSED, actor=admin_user).count() == 2


def test_it_needs_a_reason(client, operator, workflows):
    client.force_login(operator)
    response = client.post("/workflows/stop-all/", {"reason": ""})
    assert response.status_code == 422
    assert "Say in a few words why you pause it" in response.content.decode()
    assert not Event.objects.exists()


def test_when_everything_is_paused_there_is_nothing_to_stop(client, operator, workflows):
    Workflow.objects.update(state="paused")
    client.force_login(operator)
    assert "there is nothing to stop" in client.get("/workflows/stop-all/").content.decode()


@pytest.mark.parametrize("persona", ["reviewer", "support", "finance"])
def test_only_operators_and_admins_stop_all(client, persona, request, workflows):
    client.force_login(request.getfixturevalue(persona))
    for method in ("get", "post"):
        response = getattr(client, method)("/workflows/stop-all/", {"reason": "mine"})
        assert response.status_code == 403
        assert "Only operators and admins pause and resume workflows." in response.content.decode()
    assert Workflow.objects.filter(state="running").count() == 2
