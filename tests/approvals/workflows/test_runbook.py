"""A runbook that names people: each job checked against the permission it needs, flagged in
plain words when the named person could not do it; shown on the workflow's and its runs' pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from approvals.models import Event
from approvals.workflows.selectors import runbook, runbook_line
from tests.factories import make_agent, make_tickets
from tests.undo.conftest import apply_run


def person(username: str, *groups: str, **fields) -> User:
    user = User.objects.create_user(username=username, **fields)
    user.groups.set([Group.objects.get_or_create(name=g)[0] for g in groups])
    return user


@pytest.fixture
def named(workflow):
    make_agent(workflow, record_types=("ticket",))
    people = {
        "maya": person("maya", "operators"),
        "chris": person("chris", "support"),
        "lee": person("lee", "support"),
        "kim": person("kim", "reviewers"),
    }
    workflow.runbook_pauser = people["maya"]
    workflow.runbook_undo_approver = people["chris"]
    workflow.runbook_rerunner = people["lee"]
    workflow.runbook_log_reader = people["kim"]
    workflow.save()
    return people


def problems(workflow) -> list[str]:
    return [job.problem for job in runbook(workflow) if not job.ok]


def test_a_runbook_of_people_who_can_do_their_jobs(workflow, named):
    jobs = runbook(workflow)
    assert all(job.ok for job in jobs)
    assert runbook_line(jobs) == (
        "maya pauses it, chris approves undoing it, lee reruns it after a fix, kim reads the logs"
    )


def test_someone_without_the_permission_is_flagged(workflow, named):
    named["lee"].groups.set([Group.objects.get(name="reviewers")])
    named["maya"].groups.set([Group.objects.get(name="reviewers")])
    assert problems(workflow) == [
        "maya cannot pause it: not an operator or admin",
        "lee cannot rerun it: not in the support group that owns tickets",
    ]


def test_nobody_and_a_deactivated_account_are_flagged(workflow, named):
    workflow.runbook_pauser = None
    workflow.save()
    named["chris"].is_active = False
    named["chris"].save()
    assert problems(workflow) == [
        "nobody is named to pause it",
        "chris cannot approve undoing it: their account is deactivated",
    ]


def test_a_log_reader_must_see_every_run(workflow, named):
    workflow.agents.update(record_types=["ticket", "invoice"])
    workflow.runbook_log_reader = named["lee"]
    workflow.save()
    assert problems(workflow) == [
        "chris cannot approve undoing it: not in the finance group that owns invoices",
        "lee cannot rerun it: not in the finance group that owns invoices",
        "lee cannot read its logs: not in the finance group that owns invoices, nor an operator or reviewer",
    ]


def test_a_workflow_whose_agents_propose_for_nothing(workflow, named):
    workflow.agents.update(record_types=[])
    assert "chris cannot be checked to approve undoing it: no record types (its agents propose for none)" in problems(
        workflow
    )


def test_the_workflow_page_flags_it(client, operator, workflow, named):
    named["lee"].groups.clear()
    client.force_login(operator)
    page = client.get("/workflows/ticket-triage/").content.decode()
    assert "<strong>maya</strong> pauses it" in page
    assert "⚠ lee cannot rerun it: not in the support group that owns tickets." in page


def test_the_run_page_says_who_to_call(client, support, workflow, named):
    agent = workflow.agents.get()
    run, _ = apply_run(agent, workflow, "r-1", [(make_tickets(1)[0], {"status": "closed"})])
    workflow.runbook_rerunner = None
    workflow.save()
    client.force_login(support)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert (
        "If this run goes wrong: maya pauses it, chris approves undoing it, nobody reruns it after a fix, "
        "kim reads the logs." in page
    )
    assert "⚠ Nobody is named to rerun it." in page  # the only problem: one line


def test_an_operator_names_the_people_and_it_is_an_event(client, operator, workflow, named):
    person("gone", "support", is_active=False)
    client.force_login(operator)
    form = client.get("/workflows/ticket-triage/").context["runbook_form"]
    assert "gone" not in [u.username for u in form.fields["runbook_rerunner"].queryset]
    data = {
        "runbook_pauser": named["maya"].pk,
        "runbook_undo_approver": named["lee"].pk,
        "runbook_rerunner": "",
        "runbook_log_reader": named["kim"].pk,
        "notes": "Call maya first.",
    }
    response = client.post("/workflows/ticket-triage/runbook/", data, follow=True)
    event = Event.objects.get(kind=Event.Kind.RUNBOOK_CHANGED)
    assert event.actor == operator
    assert event.message == (
        "otto: runbook of ticket-triage: lee approves undoing it (was chris); nobody reruns it after a fix "
        "(was lee); notes changed."
    )
    assert "Saved the runbook" in response.content.decode()
    workflow.refresh_from_db()
    assert (workflow.runbook_undo_approver, workflow.runbook_rerunner, workflow.runbook_notes) == (
        named["lee"],
        None,
        "Call maya first.",
    )
    # The same again: nothing changed, no event.
    client.post("/workflows/ticket-triage/runbook/", data)
    assert Event.objects.filter(kind=Event.Kind.RUNBOOK_CHANGED).count() == 1


def test_an_unknown_person_is_refused_by_the_form(client, operator, workflow, named):
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/runbook/", {"runbook_pauser": 99999})
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert not Event.objects.exists()
