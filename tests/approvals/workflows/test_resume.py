"""Resuming a paused workflow: what it held is routed again through the rules, with an event each."""

from __future__ import annotations

from django.utils import timezone

from approvals.apply.services import apply_changes
from approvals.lifecycle import Actor
from approvals.models import Change, Event, RuleSet, Workflow
from approvals.review import services
from approvals.workflows.services import resume_workflow
from tests.factories import make_rule, make_tickets, propose_waiting, ticket_change

S = Change.Status


def pause(workflow: Workflow) -> None:
    workflow.state = Workflow.State.PAUSED
    workflow.save(update_fields=["state"])


def post_low_risk(api, ticket, operation_id="low"):
    response = api.post(
        "/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket, operation_id)}
    )
    assert response.status_code in (201, 202), response.content  # 202: held
    return response.json()


def test_a_held_change_says_why_it_waits_and_what_happens_next(api, workflow, ticket):
    pause(workflow)
    body = post_low_risk(api, ticket)
    assert body["status"] == "held"
    assert not body["explanation"].startswith("Auto-approved")
    assert "Held: the workflow ticket-triage is paused" in body["explanation"]
    assert "When it is resumed, the rules route it again" in body["explanation"]
    assert "(rule 'below the review threshold')" in body["explanation"]  # what the rules said, still there
    assert (
        "Held: the workflow ticket-triage is paused" in api.get(f"/api/v1/changes/{body['id']}").json()["explanation"]
    )


def test_resuming_routes_held_changes_again(api, workflow, support, django_capture_on_commit_callbacks):
    first, second, third = make_tickets(3)
    waiting = propose_waiting(api, third, "needs-review")
    pause(workflow)
    held = post_low_risk(api, first, "low-1")
    approved = services.approve_change(change=waiting, user=support)  # approved while paused: held too
    assert approved.status == S.HELD
    # While paused, the operator tightened the rules: everything now goes to support.
    RuleSet.objects.create(workflow=workflow, version=2, rules=[make_rule("all to support", [], "review")])
    tightened = post_low_risk(api, second, "low-2")  # the new rules send this one to review at once
    assert tightened["status"] == "pending_review"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = resume_workflow(workflow=workflow, actor=Actor.system("test"))
    workflow.refresh_from_db()
    assert workflow.state == Workflow.State.RUNNING
    again = Change.objects.get(pk=held["id"])
    # Routed again by the rules as they are now: a person reviews it.
    assert (again.status, again.decision, again.review_group) == (S.PENDING_REVIEW, "review", "support")
    assert again.decision_explanation.startswith("Held for support review")
    assert again.rule_set.version == 2
    # A person's approval given under the rules before: asked again, not silently applied.
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW and waiting.approver is None
    assert (outcome.queued, outcome.to_review, outcome.refused, outcome.asked_again) == (
        [],
        [again.pk],
        [],
        [waiting.pk],
    )
    assert outcome.why[waiting.pk] == "the rules changed since sam approved it (v1 → v2)"
    assert not callbacks  # nothing queued, nothing for the workers
    assert Event.objects.filter(change=again, from_status=S.HELD, to_status=S.PENDING_REVIEW).exists()
    assert Event.objects.filter(
        change=waiting,
        from_status=S.HELD,
        to_status=S.PENDING_REVIEW,
        message__contains="asked again: the rules changed since sam approved it (v1 → v2)",
    ).exists()
    assert Event.objects.filter(kind=Event.Kind.RESUMED, workflow=workflow, message__contains="resumed").exists()


def test_resuming_with_unchanged_rules_queues_what_they_auto_approve(api, workflow, ticket):
    pause(workflow)
    held = post_low_risk(api, ticket)
    resume_workflow(workflow=workflow, actor=Actor.system("test"))
    change = Change.objects.get(pk=held["id"])
    assert change.status == S.QUEUED
    assert change.decision_explanation.startswith("Auto-approved")
    assert apply_changes(change_ids=[change.pk])["applied"] == 1


def test_the_admin_resumes_through_the_service(client, admin_user, api, workflow, ticket):
    pause(workflow)
    held = post_low_risk(api, ticket)
    client.force_login(admin_user)
    now = timezone.localtime()
    response = client.post(
        f"/admin/approvals/workflow/{workflow.pk}/change/",
        {
            "name": workflow.name,
            "title": "",
            "owner": "",
            "state": "running",
            "review_wait_threshold": 60,
            "created_at_0": now.strftime("%Y-%m-%d"),
            "created_at_1": now.strftime("%H:%M:%S"),
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "1 held change routed again: 1 queued" in response.content.decode()
    assert Change.objects.get(pk=held["id"]).status == S.QUEUED
    assert Event.objects.filter(kind=Event.Kind.RESUMED, actor=admin_user, message__contains="resumed").exists()


def test_the_admin_action_resumes_the_selected_workflows(client, admin_user, api, workflow, ticket):
    pause(workflow)
    held = post_low_risk(api, ticket)
    client.force_login(admin_user)
    response = client.post(
        "/admin/approvals/workflow/",
        {"action": "resume_workflows", "_selected_action": [workflow.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert Change.objects.get(pk=held["id"]).status == S.QUEUED
