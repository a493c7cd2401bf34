"""The pause alert: every pause emails the runbook's people and the owner, once, saying what was
paused, by whom, when, why, what is held, the runbook and the workflow's page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from approvals.lifecycle import Actor
from approvals.models import Change, Event
from approvals.tasks import send_pause_alert_task
from approvals.workflows.alerts import runbook_lines, send_pause_alert
from approvals.workflows.services import pause_workflow
from countersign.outbox.models import Dispatch
from tests.factories import make_tickets, ticket_change

K = Event.Kind


@pytest.fixture
def runbook(workflow, operator, support, reviewer):
    """maya pauses it, chris approves undoing it, lee reruns it, sam reads the logs; chris owns it."""
    people = {
        name: User.objects.create_user(username=name, email=f"{name}@example.com")
        for name in ("maya", "chris", "lee", "sam2")
    }
    workflow.runbook_pauser = people["maya"]
    workflow.runbook_undo_approver = people["chris"]
    workflow.runbook_rerunner = people["lee"]
    workflow.runbook_log_reader = people["sam2"]
    workflow.owner = people["chris"]  # the owner is in the runbook too: e-mailed once
    workflow.runbook_notes = "Check the tagger's prompt first."
    workflow.save()
    return people


def alert_of(pause_event: Event) -> Dispatch:
    return Dispatch.objects.get(task="approvals.tasks.send_pause_alert_task", args=[pause_event.pk])


def test_a_pause_dispatches_its_alert_in_its_transaction(workflow, operator):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="tags look wrong")
    assert alert_of(Event.objects.get(kind=K.PAUSED))


def test_the_alert_goes_to_the_runbook_and_the_owner_once(api, workflow, operator, runbook, mailoutbox, settings):
    settings.SITE_URL = "https://countersign.example/"
    response = api.post(
        "/api/v1/changes/batch",
        {
            "workflow": "ticket-triage",
            "run": "r-1",
            "changes": [ticket_change(t, f"op-{t.pk}") for t in make_tickets(3)],
        },
    )
    assert response.status_code == 201
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="tags look wrong")
    pause = Event.objects.get(kind=K.PAUSED)

    assert send_pause_alert_task(pause.pk) is True
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == ["chris@example.com", "lee@example.com", "maya@example.com", "sam2@example.com"]
    assert mail.subject == "[Countersign] ticket-triage is paused (otto)"
    body = mail.body
    assert "The workflow ticket-triage (ticket-triage) is paused" in body
    assert "Paused by: otto" in body
    assert "Why: tags look wrong" in body
    assert "- 3 changes queued for the workers were held;" in body
    assert "- maya pauses it\n- chris approves undoing it\n- lee reruns it after a fix\n- sam2 reads the logs" in body
    assert "Notes: Check the tagger's prompt first." in body
    assert "https://countersign.example/workflows/ticket-triage/" in body
    alerted = Event.objects.get(kind=K.ALERTED)
    assert alerted.workflow == workflow and alerted.details["pause_event"] == pause.pk
    assert "e-mailed chris@example.com, lee@example.com, maya@example.com, sam2@example.com" in alerted.message

    # The outbox may run the task again: nothing more is sent.
    assert send_pause_alert_task(pause.pk) is False
    assert len(mailoutbox) == 1
    assert Event.objects.filter(kind=K.ALERTED).count() == 1


def test_each_pause_is_alerted_once(workflow, operator, runbook, mailoutbox):
    from approvals.workflows.services import resume_workflow

    for reason in ("first", "second"):
        pause_workflow(workflow=workflow, actor=Actor.person(operator), reason=reason)
        resume_workflow(workflow=workflow, actor=Actor.person(operator))
    for pause in Event.objects.filter(kind=K.PAUSED):
        send_pause_alert(event_id=pause.pk)
    assert [m.body.split("Why: ")[1].split("\n")[0] for m in mailoutbox] == ["first", "second"]


def test_people_inactive_or_without_an_address_are_not_emailed_and_jobs_nobody_holds_are_flagged(
    workflow, operator, runbook, mailoutbox
):
    runbook["lee"].is_active = False
    runbook["lee"].save()
    runbook["sam2"].email = ""
    runbook["sam2"].save()
    workflow.runbook_undo_approver = None
    workflow.save()
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="tags look wrong")
    send_pause_alert(event_id=Event.objects.get(kind=K.PAUSED).pk)
    assert sorted(mailoutbox[0].to) == ["chris@example.com", "maya@example.com"]  # chris as the owner
    assert runbook_lines(workflow) == [
        "maya pauses it",
        "nobody approves undoing it — NOBODY HOLDS THIS JOB: name someone on the workflow's page",
        "lee reruns it after a fix — BUT THEIR ACCOUNT IS DISABLED: name someone else",
        "sam2 reads the logs",
    ]
    assert "- nobody approves undoing it — NOBODY HOLDS THIS JOB" in mailoutbox[0].body


def test_with_nobody_to_email_the_alert_says_so(workflow, operator, mailoutbox):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="tags look wrong")
    assert send_pause_alert(event_id=Event.objects.get(kind=K.PAUSED).pk) is False
    assert mailoutbox == []
    assert "nobody to e-mail that ticket-triage was paused" in Event.objects.get(kind=K.ALERTED).message


@pytest.mark.django_db(transaction=True)
def test_the_automatic_pause_is_alerted_with_its_numbers(agent, workflow, runbook, mailoutbox):
    from approvals.models import AutoPause

    from .test_auto_pause import applied

    AutoPause.objects.create(workflow=workflow, max_same_value=5)
    applied(agent, workflow, make_tickets(6), values={"tags": "spam"})
    pause = Event.objects.get(kind=K.PAUSED)
    send_pause_alert(event_id=alert_of(pause).args[0])
    body = mailoutbox[0].body
    assert "Paused by: system (automatic pause)" in body
    assert "Why: paused automatically: 'Tags' was set to spam on 6 tickets in the last 10 minutes, more than 5" in body
    assert Change.objects.filter(status=Change.Status.APPLIED).count() == 6
