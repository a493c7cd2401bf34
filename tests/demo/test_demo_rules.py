"""The demo's routing rules: seeded once, kept when a person edits them, and routing as the demo promises."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from approvals.models import RuleSet, Workflow
from approvals.rules.editing import save_rules
from demo.management.commands.seed_demo import DEFAULT_RULES, WORKFLOW_RULES
from tests.factories import make_customer, make_invoice, make_refund, make_ticket, make_tickets, ticket_change


def test_seed_demo_saves_the_demo_rules_once_and_keeps_a_persons_edit(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo rules: saved for global defaults, ticket-triage, refund-bot, account-sync" in out.getvalue()
    assert RuleSet.objects.count() == 4
    assert [r["name"] for r in RuleSet.objects.get(workflow=None).rules] == [
        "unsure agent",
        "several records at once",
        "risky",
        "key accounts",
    ]
    call_command("seed_demo", stdout=(out := io.StringIO()))
    assert "Demo rules: already in place" in out.getvalue()
    assert RuleSet.objects.count() == 4
    # An operator's edit survives the next seed.
    from django.contrib.auth.models import User

    triage = Workflow.objects.get(name="ticket-triage")
    save_rules(workflow=triage, rules=WORKFLOW_RULES[:1], user=User.objects.get(username="operator"))
    call_command("seed_demo", stdout=io.StringIO())
    assert [r["name"] for r in RuleSet.objects.filter(workflow=triage).first().rules] == ["big refunds"]


@pytest.fixture
def demo_rules(workflow, finance, support):
    save_rules(workflow=None, rules=DEFAULT_RULES, actor_label="test")
    save_rules(workflow=workflow, rules=WORKFLOW_RULES, actor_label="test")


def post(api, body):
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **body})
    assert response.status_code == 201, response.content
    return response.json()


def tag(ticket, **overrides):
    return ticket_change(ticket, operation_id=f"tag-{ticket.pk}", **overrides)


@pytest.mark.parametrize(
    "overrides, decision, because",
    [
        ({}, "auto_apply", "Auto-approved: record type ticket; operation update; changes only tags; risk 0.1 < 0.3"),
        ({"confidence": 0.5}, "review", "confidence 0.5 < 0.6 (rule 'unsure agent')"),
        ({"risk": 0.75}, "review", "risk 0.75 ≥ 0.7 (rule 'risky')"),
        (
            {"values": {"status": "closed"}, "records": None},
            "review",
            "Held for support review: no rule matched, so a person decides.",
        ),
    ],
)
def test_demo_ticket_routing(api, demo_rules, overrides, decision, because):
    ticket = make_ticket()
    if overrides.get("records", 1) is None:
        overrides["records"] = [{"id": ticket.pk, "expected": {"status": "open"}}]
    body = post(api, tag(ticket, **overrides))
    assert body["decision"] == decision
    assert because in body["explanation"]


def test_anything_touching_a_vip_or_enterprise_customer_is_reviewed(api, demo_rules):
    body = post(api, tag(make_ticket(make_customer(tier="enterprise"))))
    assert body["decision"] == "review"
    assert "customer tier enterprise (rule 'key accounts')" in body["explanation"]
    assert "Overruled: 'low-risk tagging and notes' (auto-apply)" in body["explanation"]


def test_a_change_to_several_records_is_reviewed(api, demo_rules):
    tickets = make_tickets(2)
    body = tag(tickets[0], records=[{"id": t.pk, "expected": {"tags": ""}} for t in tickets])
    assert "records touched 2 > 1 (rule 'several records at once')" in post(api, body)["explanation"]


def test_a_permission_change_needs_two_approvals(api, demo_rules):
    customer = make_customer()
    body = post(
        api,
        {
            "operation_id": "perm-1",
            "record_type": "customer",
            "records": [{"id": customer.pk, "expected": {"permission_level": "viewer"}}],
            "values": {"permission_level": "admin"},
            "risk": 0.2,
            "confidence": 0.9,
        },
    )
    assert (body["decision"], body["review_group"], body["approvals_required"]) == ("review", "support", 2)
    assert body["explanation"] == (
        "Held for support review, 2 approvals: changes permission level (rule 'permission changes')."
    )


@pytest.mark.parametrize(
    "amount, explanation",
    [
        # A create: the refund it would make has that amount too.
        (
            "450.00",
            "Held for finance review: record type refund; amount 450 > 100; refund amount 450 > 100 "
            "(rule 'big refunds').",
        ),
        ("50.00", "Held for finance review: a refund cannot be taken back once applied, so a person always decides."),
    ],
)
def test_refunds_go_to_finance(api, demo_rules, amount, explanation):
    body = post(
        api,
        {
            "operation_id": f"refund-{amount}",
            "record_type": "refund",
            "operation": "create",
            "values": {"invoice": make_invoice().pk, "amount": amount},
            "risk": 0.1,
            "confidence": 0.9,
        },
    )
    assert (body["decision"], body["review_group"]) == ("review", "finance")
    assert body["explanation"] == explanation


def test_a_refund_update_is_judged_by_the_refunds_amount(api, demo_rules):
    refund = make_refund(amount="250.00")
    body = post(
        api,
        {
            "operation_id": "decline-1",
            "record_type": "refund",
            "records": [{"id": refund.pk, "expected": {"status": "requested"}}],
            "values": {"status": "declined"},
            "risk": 0.1,
            "confidence": 0.9,
        },
    )
    assert "refund amount 250 > 100 (rule 'big refunds')" in body["explanation"]
