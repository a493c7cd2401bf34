"""Dry run: replay recent proposals against draft rules and count the outcomes that would change."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from approvals.models import Change, RuleSet
from approvals.rules.dry_run import dry_run
from tests.factories import make_agent, make_rule, make_tickets, make_workflow, ticket_change

LOW = make_rule("below the review threshold", [{"field": "risk", "op": "lt", "value": 0.5}], "auto_apply")
VERY_RISKY = make_rule("very risky", [{"field": "risk", "op": "gt", "value": 0.9}], "refuse")
FINANCE = make_rule(
    "risky goes to finance", [{"field": "risk", "op": "gte", "value": 0.55}], "review", group="finance", approvals=2
)


def propose(api, tickets, risks, run="r-1"):
    changes = [ticket_change(t, operation_id=f"{run}-{t.pk}", risk=r) for t, r in zip(tickets, risks, strict=False)]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": run, "changes": changes})
    assert response.status_code == 201, response.content


def test_it_counts_what_would_change_with_examples(api, workflow):
    # Under version 1 (risk < 0.5 → auto-apply, else support reviews): 4 auto, 6 reviews.
    propose(api, make_tickets(10), [0.1] * 4 + [0.6] * 3 + [0.95] * 3)
    result = dry_run(workflow=workflow, rules=[LOW, VERY_RISKY, FINANCE])
    assert (result.replayed, result.changed) == (10, 6)
    shifts = {(s.before, s.after): s for s in result.shifts}
    assert {k: s.count for k, s in shifts.items()} == {
        ("review", "refuse"): 3,
        ("review", "review (other reviewers or approvals)"): 3,
    }
    example = shifts[("review", "refuse")].examples[0]
    assert (example.before, example.after) == ("support review, 1 approval", "refuse")
    assert example.explanation.startswith("Refused: risk 0.95 > 0.9 (rule 'very risky').")
    moved = shifts[("review", "review (other reviewers or approvals)")].examples[0]
    assert moved.after == "finance review, 2 approvals"


def test_examples_are_capped_at_three_and_nothing_is_saved(api, workflow):
    propose(api, make_tickets(8), [0.1] * 8)
    result = dry_run(workflow=workflow, rules=[make_rule("refuse all", [], "refuse")])
    assert [(s.before, s.after, s.count, len(s.examples)) for s in result.shifts] == [("auto-apply", "refuse", 8, 3)]
    assert RuleSet.objects.count() == 1
    assert set(Change.objects.values_list("decision", flat=True)) == {"auto_apply"}


def test_it_replays_the_last_1000_or_the_last_30_days_whichever_is_fewer(api, workflow):
    propose(api, make_tickets(6), [0.1] * 6)
    old = Change.objects.order_by("id")[:2]
    Change.objects.filter(pk__in=[c.pk for c in old]).update(created_at=timezone.now() - timedelta(days=31))
    assert dry_run(workflow=workflow, rules=[]).replayed == 4
    assert dry_run(workflow=workflow, rules=[], limit=3).replayed == 3


def test_it_replays_only_the_workflows_own_proposals(api, workflow, agent):
    other = make_workflow("refund-bot")
    agent.workflows.add(other)
    propose(api, make_tickets(2), [0.1, 0.1])
    body = {"workflow": "refund-bot", "run": "r-2", **ticket_change(make_tickets(1)[0], operation_id="x")}
    assert api.post("/api/v1/changes", body).status_code == 201
    assert dry_run(workflow=workflow, rules=[]).replayed == 2
    assert dry_run(workflow=other, rules=[]).replayed == 1


def test_draft_defaults_are_replayed_on_every_workflow_with_its_own_rules(api, workflow, agent):
    other = make_workflow("account-sync", review_threshold=0.2)
    agent.workflows.add(other)
    propose(api, make_tickets(3), [0.1, 0.3, 0.6])
    body = {"workflow": "account-sync", "run": "r-2", **ticket_change(make_tickets(1)[0], operation_id="x", risk=0.1)}
    assert api.post("/api/v1/changes", body).status_code == 201
    unsure = make_rule("risky", [{"field": "risk", "op": "gte", "value": 0.25}], "review", group="finance")
    result = dry_run(workflow=None, rules=[unsure])
    # ticket-triage: 0.3 auto → review (0.6 was reviewed by support, now by finance); account-sync: nothing.
    assert result.replayed == 4
    assert {(s.before, s.after): s.count for s in result.shifts} == {
        ("auto-apply", "review"): 1,
        ("review", "review (other reviewers or approvals)"): 1,
    }


# Through the editor page --------------------------------------------------------------------------


def editor(**fields):
    return {
        "base_version": "1",
        "rows": "1",
        "groups": "0",
        "name": "very risky",
        "enabled": "on",
        "match": "all",
        "row-0-field": "risk",
        "row-0-op": "gt",
        "row-0-value": "0.9",
        "decision": "refuse",
        "group": "",
        "approvals": "1",
        "action": "dry_run",
        **fields,
    }


def test_the_editor_shows_a_dry_run_before_saving(api, client, operator, workflow):
    propose(api, make_tickets(5), [0.1, 0.1, 0.95, 0.95, 0.6])
    client.force_login(operator)
    page = client.post("/workflows/ticket-triage/rules/new", editor())
    assert page.status_code == 200
    body = page.content.decode()
    assert "<strong>2</strong> of 5 outcomes would change" in body
    assert "<strong>2</strong> review → refuse" in body
    assert 'value="0.9"' in body  # the draft is still in the form
    fragment = client.post("/workflows/ticket-triage/rules/new", editor(), HTTP_HX_REQUEST="true")
    assert fragment.content.decode().lstrip().startswith('<div class="card dry-run"')
    assert RuleSet.objects.count() == 1


def test_the_delete_page_shows_what_removing_a_rule_would_change(api, client, operator, workflow):
    propose(api, make_tickets(3), [0.1, 0.1, 0.6])
    rule_id = workflow.rule_sets.get().rules[0]["id"]
    client.force_login(operator)
    body = client.get(f"/workflows/ticket-triage/rules/{rule_id}/delete").content.decode()
    assert "<strong>2</strong> auto-apply → review" in body


def test_a_dry_run_of_an_invalid_draft_shows_the_errors_instead(api, client, operator, workflow):
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/rules/new", editor(**{"row-0-value": "x"}), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#rule-editor"
    assert "is not a number" in response.content.decode()


def test_it_replays_the_proposals_of_every_agent(api, workflow):
    # Proposals from every agent of the workflow are replayed.
    _, token = make_agent(workflow, name="second-bot")
    from tests.conftest import ApiClient

    propose(api, make_tickets(1), [0.1])
    propose(ApiClient(token), make_tickets(1), [0.1], run="r-2")
    assert dry_run(workflow=workflow, rules=[]).changed == 2


def test_a_change_that_went_to_conflict_is_no_change_of_outcome(api, workflow):
    # An auto-applied change whose record moved meanwhile goes to conflict, and to its owners'
    # review group; the rules still auto-apply it, so the same rules change nothing.
    from approvals.apply import services

    (ticket,) = make_tickets(1)
    propose(api, [ticket], [0.1])
    ticket.tags = "vip"
    ticket.save()
    assert services.apply_changes(change_ids=list(Change.objects.values_list("pk", flat=True)))["conflict"] == 1
    result = dry_run(workflow=workflow, rules=workflow.rule_sets.get().rules)
    assert (result.replayed, result.changed, result.shifts) == (1, 0, [])
