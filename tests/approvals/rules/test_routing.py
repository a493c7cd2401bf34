"""Routing: the most cautious matching rule wins, hard gates hold, every decision says why."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import rules
from approvals.models import Agent, Change, RuleSet, Workflow
from approvals.rules.engine import ActiveRules, compile_rules, decide, facts_of
from tests.factories import (
    make_customer,
    make_invoice,
    make_refund,
    make_rule,
    make_ticket,
    make_tickets,
    make_workflow,
    ticket_change,
)


def proposal(record_type="ticket", values=None, *, record_ids=(1,), operation="update", risk=0.1, confidence=0.9):
    """An unsaved change, as intake builds it."""
    return Change(
        workflow=Workflow(name="ticket-triage"),
        agent=Agent(name="triage-bot", version="1.4"),
        record_type=record_type,
        operation=operation,
        record_ids=list(record_ids),
        values={"tags": "billing"} if values is None else values,
        risk=risk,
        confidence=confidence,
        created_at=timezone.now(),
    )


def routed(change, workflow_rules=(), defaults=(), attributes=()):
    active = ActiveRules(
        None,
        None,
        compile_rules(list(workflow_rules), scope="workflow") + compile_rules(list(defaults), scope="defaults"),
    )
    return decide(active, change, facts_of(change, list(attributes)))


ALWAYS_AUTO = make_rule("tagging", [], "auto_apply")
HIGH_RISK = make_rule("high risk", [{"field": "risk", "op": "gte", "value": 0.7}], "review")
TWO_EYES = make_rule("two eyes", [{"field": "risk", "op": "gte", "value": 0.7}], "review", group="finance", approvals=2)
REFUSE = make_rule("never", [{"field": "risk", "op": "gt", "value": 0.9}], "refuse")


def test_no_rule_matching_means_review_by_the_owner_group():
    routing = routed(proposal())
    assert (routing.decision, routing.review_group, routing.approvals_required) == ("review", "support", 1)
    assert routing.explanation == "Held for support review: no rule matched, so a person decides."
    assert routing.matched == []


def test_auto_apply_when_only_an_auto_rule_matches():
    routing = routed(proposal(), [ALWAYS_AUTO, HIGH_RISK])
    assert (routing.decision, routing.review_group, routing.approvals_required) == ("auto_apply", "", 0)
    assert routing.explanation == "Auto-approved: always (rule 'tagging')."


def test_review_beats_auto_apply_whatever_the_order():
    for order in ([ALWAYS_AUTO, HIGH_RISK], [HIGH_RISK, ALWAYS_AUTO]):
        routing = routed(proposal(risk=0.8), order)
        assert routing.decision == "review"
        assert routing.review_group == "support"  # the rule names no group: the owner group reviews
        assert routing.explanation == (
            "Held for support review: risk 0.8 ≥ 0.7 (rule 'high risk'). Overruled: 'tagging' (auto-apply)."
        )


def test_refuse_beats_review():
    routing = routed(proposal(risk=0.95), [HIGH_RISK, REFUSE, ALWAYS_AUTO])
    assert (routing.decision, routing.review_group, routing.approvals_required) == ("refuse", "", 0)
    assert routing.explanation.startswith("Refused: risk 0.95 > 0.9 (rule 'never').")


def test_among_reviews_more_approvals_win_and_name_their_group():
    routing = routed(proposal(risk=0.8), [HIGH_RISK, TWO_EYES])
    assert (routing.decision, routing.review_group, routing.approvals_required) == ("review", "finance", 2)
    assert routing.explanation == (
        "Held for finance review, 2 approvals: risk 0.8 ≥ 0.7 (rule 'two eyes'); risk 0.8 ≥ 0.7 (rule 'high risk')."
    )
    assert [(m["rule"], m["decided"]) for m in routing.matched] == [("high risk", False), ("two eyes", True)]


def test_among_equal_reviews_the_first_rule_wins():
    first = make_rule("first", [], "review", group="finance")
    second = make_rule("second", [], "review", group="support")
    assert routed(proposal(), [first, second]).review_group == "finance"
    assert routed(proposal(), [second], defaults=[first]).review_group == "support"


def test_the_global_defaults_count_with_the_workflows_rules():
    routing = routed(proposal(confidence=0.5), [ALWAYS_AUTO], defaults=[make_rule("unsure", [_low_confidence()])])
    assert routing.decision == "review"
    assert routing.matched[1]["scope"] == "defaults"
    assert routing.matched[1]["reasons"][0]["text"] == "confidence 0.5 < 0.6"


def _low_confidence():
    return {"field": "confidence", "op": "lt", "value": 0.6}


def test_a_rule_turned_off_is_not_used():
    off = make_rule("off", [], "refuse", enabled=False)
    assert routed(proposal(), [off, ALWAYS_AUTO]).decision == "auto_apply"


def test_an_irreversible_record_type_is_never_auto_applied():
    refund = proposal("refund", {"invoice": 1, "amount": "10.00"}, record_ids=(), operation="create")
    routing = routed(refund, [ALWAYS_AUTO])
    assert (routing.decision, routing.review_group, routing.approvals_required) == ("review", "finance", 1)
    assert routing.explanation == (
        "Held for finance review: a refund cannot be taken back once applied, so a person always decides. "
        "Overruled: 'tagging' (auto-apply)."
    )
    assert routing.matched[-1]["scope"] == "gate" and routing.matched[-1]["decided"]


def test_an_irreversible_field_is_never_auto_applied():
    change = proposal("customer", {"permission_level": "admin", "name": "x"})
    routing = routed(change, [ALWAYS_AUTO])
    assert (routing.decision, routing.review_group) == ("review", "support")
    assert "changing the permission level of a customer cannot be taken back" in routing.explanation


def test_rules_may_ask_more_of_an_irreversible_change_but_never_less():
    refund = proposal("refund", {"amount": "450.00"})
    big = make_rule("big refunds", [{"field": "value.amount", "op": "gt", "value": 100}], "review", approvals=2)
    routing = routed(refund, [big])
    assert routing.approvals_required == 2
    assert routing.explanation == "Held for finance review, 2 approvals: amount 450 > 100 (rule 'big refunds')."
    assert routed(refund, [make_rule("no", [], "refuse")]).decision == "refuse"


def test_the_explanation_names_every_rule_with_its_values():
    big = make_rule("big refunds", [{"field": "value.amount", "op": "gt", "value": 100}], "review", group="finance")
    key = make_rule("key accounts", [{"field": "attr.customer_tier", "op": "in", "value": ["vip", "enterprise"]}])
    routing = routed(proposal("refund", {"amount": "450.00"}), [big, key], attributes=[{"customer_tier": "enterprise"}])
    assert routing.explanation == (
        "Held for finance review: amount 450 > 100 (rule 'big refunds'); "
        "customer tier enterprise (rule 'key accounts')."
    )


# Through intake: the decision, its reasons and the versions are stored ------------------------------


def test_a_stored_change_keeps_the_matched_rules_and_the_versions(api, ticket, workflow):
    defaults = RuleSet.objects.create(version=4, rules=[make_rule("unsure", [_low_confidence()])])
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)})
    body = response.json()
    assert body["rule_set_version"] == 1 and body["default_rule_set_version"] == 4
    assert body["matched_rules"] == [
        {
            "rule": "below the review threshold",
            "scope": "workflow",
            "outcome": "auto_apply",
            "outcome_text": "auto-apply",
            "reasons": [{"field": "risk", "op": "lt", "expected": 0.5, "actual": 0.1, "text": "risk 0.1 < 0.5"}],
            "decided": True,
        }
    ]
    change = Change.objects.get()
    assert change.rule_set == workflow.rule_sets.get() and change.default_rule_set == defaults
    assert change.matched_rules[0]["rule"] == "below the review threshold"
    assert api.get(f"/api/v1/changes/{change.pk}").json()["matched_rules"] == body["matched_rules"]


@pytest.mark.parametrize(
    "record, expected",
    [("ticket", "review"), ("invoice", "review"), ("customer", "review"), ("refund", "review"), ("plain", "auto")],
)
def test_rules_read_the_customer_behind_a_record(api, agent, record, expected):
    # "anything touching a vip or enterprise customer → review", for each record type.
    workflow = Workflow.objects.get(name="ticket-triage")
    key = make_rule("key accounts", [{"field": "attr.customer_tier", "op": "in", "value": ["vip", "enterprise"]}])
    RuleSet.objects.create(workflow=workflow, version=2, rules=[key, make_rule("rest", [], "auto_apply")])
    vip = make_customer(name="Globex", tier="vip")
    body = {
        "ticket": lambda: ticket_change(make_ticket(vip)),
        "plain": lambda: ticket_change(make_ticket()),
        "invoice": lambda: _update("invoice", make_invoice(vip), {"status": "void"}, {"status": "paid"}),
        "customer": lambda: _update("customer", vip, {"name": "Globex AG"}, {"name": "Globex"}),
        "refund": lambda: _update(
            "refund", make_refund(make_invoice(vip)), {"status": "declined"}, {"status": "requested"}
        ),
    }[record]()
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **body})
    assert response.status_code == 201, response.content
    assert response.json()["decision"] == ("review" if expected == "review" else "auto_apply")
    if expected == "review":
        assert "customer tier VIP (rule 'key accounts')" in response.json()["explanation"]


def test_a_create_is_routed_by_the_customer_it_names(api, agent, workflow):
    key = make_rule("key accounts", [{"field": "attr.customer_tier", "op": "in", "value": ["vip"]}])
    RuleSet.objects.create(workflow=workflow, version=2, rules=[key, make_rule("rest", [], "auto_apply")])
    body = {
        "workflow": "ticket-triage",
        "run": "r-1",
        "operation_id": "new-1",
        "record_type": "ticket",
        "operation": "create",
        "values": {"customer": make_customer(tier="vip").pk, "subject": "Hello"},
        "risk": 0.1,
        "confidence": 0.9,
    }
    assert api.post("/api/v1/changes", body).json()["decision"] == "review"
    body |= {"operation_id": "new-2", "values": {"customer": make_customer().pk, "subject": "Hello"}}
    assert api.post("/api/v1/changes", body).json()["decision"] == "auto_apply"


def _update(record_type, record, values, expected):
    return {
        "operation_id": f"{record_type}-{record.pk}",
        "record_type": record_type,
        "records": [{"id": record.pk, "expected": expected}],
        "values": values,
        "risk": 0.1,
        "confidence": 0.9,
    }


def test_a_batch_of_1000_is_routed_without_a_query_per_change(api, workflow):
    tickets = make_tickets(1000)
    key = make_rule("key accounts", [{"field": "attr.customer_tier", "op": "in", "value": ["vip"]}])
    RuleSet.objects.create(workflow=workflow, version=2, rules=[key, make_rule("rest", [], "auto_apply")])
    changes = [ticket_change(t, operation_id=f"op-{t.pk}") for t in tickets]
    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-big", "changes": changes})
    assert response.status_code == 201
    assert response.json()["run"]["counts"] == {"queued": 1000}
    # Agent, workflow, access, the tickets with their customers' tier, run, known ids, two rule sets,
    # the workflow's state again (paused?, in the transaction that stores), counts.
    # (Inserts are bulk, in chunks the database's parameter limit decides.)
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) <= 11, selects


def test_route_alone_reads_the_current_rules(ticket):
    workflow = make_workflow("solo", review_threshold=None)
    RuleSet.objects.create(workflow=workflow, version=1, rules=[make_rule("all in", [], "auto_apply")])
    change = proposal(record_ids=(ticket.pk,))
    change.workflow = workflow
    assert rules.route(change, workflow).decision == "auto_apply"


def test_a_paused_workflow_holds_what_the_rules_auto_approve(api, ticket, workflow):
    workflow.state = Workflow.State.PAUSED
    workflow.save(update_fields=["state"])
    body = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)}).json()
    assert (body["decision"], body["status"]) == ("auto_apply", "held")
