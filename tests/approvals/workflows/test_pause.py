"""Pausing a workflow: what was queued is held, nothing of it is claimed or begun afterwards."""

from __future__ import annotations

from approvals import lifecycle
from approvals.apply import services as apply_services
from approvals.lifecycle import Actor
from approvals.models import Change, Event, Workflow
from approvals.workflows.services import pause_workflow, stop_all
from tests.factories import make_tickets, make_workflow, ticket_change

S = Change.Status


def post_queued(api, tickets, run="r-1"):
    response = api.post(
        "/api/v1/changes/batch",
        {"workflow": "ticket-triage", "run": run, "changes": [ticket_change(t, f"op-{t.pk}") for t in tickets]},
    )
    assert response.status_code == 201, response.content
    return [c["id"] for c in response.json()["changes"]]


def test_pausing_holds_what_was_queued_and_says_so(api, workflow, operator, django_capture_on_commit_callbacks):
    ids = post_queued(api, make_tickets(3))
    assert set(Change.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.QUEUED}

    outcome = pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="  tags look wrong \n")

    workflow.refresh_from_db()
    assert workflow.is_paused
    assert (workflow.paused_by, workflow.paused_by_label, workflow.pause_reason) == (
        operator,
        "otto",
        "tags look wrong",
    )
    assert outcome.held == ids
    assert set(Change.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.HELD}
    event = Event.objects.get(kind=Event.Kind.PAUSED)
    assert event.workflow == workflow and event.actor == operator
    assert event.message.startswith("otto: paused workflow ticket-triage: tags look wrong.")
    assert event.details["held"] == ids
    # The tasks already handed to the broker claim nothing.
    assert apply_services.apply_changes(change_ids=ids)["applied"] == 0


def test_pausing_twice_does_nothing_more(workflow, operator):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="first")
    again = pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="second")
    assert again.already
    assert "already paused by otto (first)" in again.sentence()
    assert Event.objects.filter(kind=Event.Kind.PAUSED).count() == 1


def test_a_claim_holds_the_queued_changes_of_a_paused_workflow(api, workflow):
    ids = post_queued(api, make_tickets(2))
    # Paused behind the services' back (as a second process would): the claim reads the state itself.
    Workflow.objects.filter(pk=workflow.pk).update(state=Workflow.State.PAUSED)
    assert lifecycle.claim(ids, lease_seconds=30, actor=Actor.system("worker")) == []
    assert set(Change.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.HELD}


def test_a_change_claimed_before_the_pause_is_held_not_begun(api, workflow, monkeypatch):
    first, second = make_tickets(2)
    ids = post_queued(api, [first, second])
    real = apply_services._apply_or_explain

    def pause_after_the_first(change, worker):
        outcome = real(change, worker)
        if change.pk == ids[0]:
            Workflow.objects.filter(pk=workflow.pk).update(state=Workflow.State.PAUSED)
        return outcome

    monkeypatch.setattr(apply_services, "_apply_or_explain", pause_after_the_first)
    counts = apply_services.apply_changes(change_ids=ids)
    assert (counts["applied"], counts["held"]) == (1, 1)
    assert Change.objects.get(pk=ids[1]).status == S.HELD
    second.refresh_from_db()
    assert second.tags == ""  # never written
    held = Event.objects.get(change_id=ids[1], kind=Event.Kind.HELD)
    assert "paused before the worker began writing it" in held.message


def test_stop_all_pauses_every_running_workflow(workflow, admin_user):
    make_workflow("refund-bot")
    paused = stop_all(actor=Actor.person(admin_user), reason="incident 42")
    assert sorted(p.workflow.name for p in paused) == ["refund-bot", "ticket-triage"]
    assert set(Workflow.objects.values_list("state", flat=True)) == {Workflow.State.PAUSED}
    assert Event.objects.filter(kind=Event.Kind.PAUSED).count() == 2
