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


# A person's approval on resume: it stands only on the rules and values it was given on -----------


def approved_while_paused(api, workflow, support, ticket, operation_id="needs-review"):
    waiting = propose_waiting(api, ticket, operation_id)
    pause(workflow)
    change = services.approve_change(change=waiting, user=support)
    assert change.status == S.HELD
    return change


def test_an_approval_on_the_same_rules_and_values_is_queued(api, workflow, support, ticket):
    change = approved_while_paused(api, workflow, support, ticket)
    outcome = resume_workflow(workflow=workflow, actor=Actor.system("test"))
    change.refresh_from_db()
    assert change.status == S.QUEUED and change.approver == support
    assert (outcome.queued, outcome.asked_again) == ([change.pk], [])
    assert Event.objects.filter(change=change, to_status=S.QUEUED, message__contains="approved by sam").exists()
    assert apply_changes(change_ids=[change.pk])["applied"] == 1


def test_an_approval_on_a_record_changed_since_is_asked_again(api, workflow, support, ticket, operator):
    change = approved_while_paused(api, workflow, support, ticket)
    ticket.refresh_from_db()
    ticket.tags = "vip"  # someone edits the ticket during the pause
    ticket.save()
    outcome = resume_workflow(workflow=workflow, actor=Actor.person(operator))
    change.refresh_from_db()
    assert change.status == S.PENDING_REVIEW and change.approver is None and change.decided_at is None
    assert (change.decision, change.review_group) == ("review", "support")
    assert outcome.asked_again == [change.pk] and outcome.queued == []
    why = "the ticket's tags changed since sam approved it"
    assert outcome.why == {change.pk: why}
    assert change.decision_explanation.startswith(f"Asked again: {why}. The rules now say: Held for support review")
    event = Event.objects.get(change=change, from_status=S.HELD)
    assert event.message.startswith(f"otto: change {change.pk} held (workflow paused) → waiting for review.")
    assert f"asked again: {why}." in event.message
    # A new review round: sam's approval no longer counts, and sam may approve again.
    assert change.current_approvals(change.approvals.all()) == []
    assert services.approve_change(change=change, user=support).status == S.QUEUED


def test_a_value_of_a_field_it_does_not_set_does_not_matter(api, workflow, support, ticket):
    change = approved_while_paused(api, workflow, support, ticket)
    ticket.refresh_from_db()
    ticket.status = "closed"  # not a field the change sets
    ticket.save()
    assert resume_workflow(workflow=workflow, actor=Actor.system("test")).queued == [change.pk]


def test_an_approval_under_rules_changed_since_and_now_refused_is_refused(api, workflow, support, ticket):
    change = approved_while_paused(api, workflow, support, ticket)
    RuleSet.objects.create(
        workflow=workflow,
        version=2,
        rules=[make_rule("no tag edits", [{"field": "risk", "op": "gte", "value": 0}], "refuse")],
    )
    outcome = resume_workflow(workflow=workflow, actor=Actor.system("test"))
    change.refresh_from_db()
    assert change.status == S.REFUSED and change.approver is None
    assert change.decision_explanation.startswith("Refused")
    assert (outcome.refused, outcome.asked_again) == ([change.pk], [])


def test_a_change_of_the_global_defaults_asks_again_too(api, workflow, support, ticket):
    change = approved_while_paused(api, workflow, support, ticket)
    RuleSet.objects.create(workflow=None, version=1, rules=[])
    outcome = resume_workflow(workflow=workflow, actor=Actor.system("test"))
    assert outcome.why == {change.pk: "the rules changed since sam approved it (global defaults none → v1)"}


def refusing(ticket):
    """Rules v2: as v1, and refuse proposals on pending tickets (only `ticket` is pending)."""
    ticket.status = "pending"
    ticket.save()
    return [
        make_rule("below the review threshold", [{"field": "risk", "op": "lt", "value": 0.5}], "auto_apply"),
        make_rule("not pending tickets", [{"field": "attr.ticket_status", "op": "in", "value": ["pending"]}], "refuse"),
    ]


def test_send_everything_held_to_review(api, workflow, support, operator):
    first, second, third = make_tickets(3)
    approved = approved_while_paused(api, workflow, support, first)
    by_rules = Change.objects.get(pk=post_low_risk(api, second, "low-1")["id"])
    refused_now = Change.objects.get(pk=post_low_risk(api, third, "low-2")["id"])
    RuleSet.objects.create(workflow=workflow, version=2, rules=refusing(third))

    outcome = resume_workflow(workflow=workflow, actor=Actor.person(operator), to_review=True)

    statuses = dict(Change.objects.filter(workflow=workflow).values_list("pk", "status"))
    assert statuses == {approved.pk: S.PENDING_REVIEW, by_rules.pk: S.PENDING_REVIEW, refused_now.pk: S.PENDING_REVIEW}
    assert outcome.everything_to_review
    assert (outcome.queued, outcome.refused) == ([], [])
    assert outcome.to_review == [by_rules.pk, refused_now.pk] and outcome.asked_again == [approved.pk]
    by_rules.refresh_from_db()
    assert (by_rules.decision, by_rules.review_group, by_rules.approvals_required) == ("review", "support", 1)
    assert by_rules.decision_explanation.startswith("Sent to review: otto sent everything held to review.")
    assert outcome.sentence() == (
        "3 held changes sent to review, as asked (1 of them approved before the pause: asked again)."
    )
    assert outcome.next_step() == "Next: a reviewer decides what was sent to review and asked again."
    event = Event.objects.get(kind=Event.Kind.RESUMED)
    assert event.details == {
        "queued": [],
        "to_review": [by_rules.pk, refused_now.pk],
        "refused": [],
        "asked_again": [approved.pk],
        "why": {str(approved.pk): "the rules changed since sam approved it (v1 → v2)"},
        "everything_to_review": True,
    }
    assert event.message == (
        "otto: resumed workflow ticket-triage. 3 held changes sent to review, as asked (1 of them approved "
        "before the pause: asked again). Next: a reviewer decides what was sent to review and asked again."
    )
    assert Event.objects.filter(kind=Event.Kind.ROUTED, to_status=S.PENDING_REVIEW).count() == 3


def test_the_resumed_sentence_names_every_outcome():
    from approvals.workflows.services import Resumed

    outcome = Resumed(queued=[1, 2], to_review=[3], refused=[4], asked_again=[5])
    assert outcome.sentence() == (
        "5 held changes routed again: 2 queued, 1 sent to review, 1 refused, 1 asked again "
        "(its approval was given under rules or record values that changed since)."
    )
    assert outcome.next_step() == (
        "Next: workers apply what was queued; a reviewer decides what was sent to review and asked again."
    )
    assert (
        Resumed(asked_again=[1, 2])
        .sentence()
        .endswith("(their approvals were given under rules or record values that changed since).")
    )
    assert Resumed().sentence() == "No change was held."


def test_held_changes_go_where_the_rules_fixed_during_the_pause_send_them(api, workflow):
    first, second = make_tickets(2)
    pause(workflow)
    kept, fixed = (Change.objects.get(pk=post_low_risk(api, t, f"low-{t.pk}")["id"]) for t in (first, second))
    RuleSet.objects.create(workflow=workflow, version=2, rules=refusing(second))
    outcome = resume_workflow(workflow=workflow, actor=Actor.system("test"))
    assert (outcome.queued, outcome.refused) == ([kept.pk], [fixed.pk])
    fixed.refresh_from_db()
    assert fixed.status == S.REFUSED and fixed.rule_set.version == 2
    assert "(rule 'not pending tickets')" in fixed.decision_explanation
