"""Plain functions that make demo records and Countersign objects for tests."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from simple_history.utils import bulk_create_with_history

from approvals.models import Agent, RuleSet, Workflow
from demo.models import Customer, Invoice, Refund, Ticket


def make_customer(**fields) -> Customer:
    fields = {"name": "Northwind Solar", "tier": "standard", "billing_email": "ap@northwind.example", **fields}
    return Customer.objects.create(**fields)


def make_ticket(customer: Customer | None = None, **fields) -> Ticket:
    fields = {"subject": "Charged twice this month", "status": "open", "tags": "", **fields}
    return Ticket.objects.create(customer=customer or make_customer(), **fields)


def make_tickets(n: int, customer: Customer | None = None) -> list[Ticket]:
    customer = customer or make_customer()
    tickets = [Ticket(customer=customer, subject=f"Ticket {i}", status="open") for i in range(n)]
    bulk_create_with_history(tickets, Ticket)
    return list(Ticket.objects.filter(customer=customer).order_by("id"))


def make_invoice(customer: Customer | None = None, **fields) -> Invoice:
    fields = {"amount": Decimal("450.00"), "status": "paid", **fields}
    return Invoice.objects.create(customer=customer or make_customer(), **fields)


def make_refund(invoice: Invoice | None = None, **fields) -> Refund:
    fields = {"amount": Decimal("50.00"), "status": "requested", **fields}
    return Refund.objects.create(invoice=invoice or make_invoice(), **fields)


def make_workflow(name: str = "ticket-triage", review_threshold: float | None = 0.5, **fields) -> Workflow:
    """A workflow whose rules auto-apply below `review_threshold` (else the owner group reviews),
    as the placeholder routing did; `review_threshold=None` gives it no rules at all."""
    workflow = Workflow.objects.create(name=name, **fields)
    if review_threshold is not None:
        rule = make_rule(
            "below the review threshold", [{"field": "risk", "op": "lt", "value": review_threshold}], "auto_apply"
        )
        RuleSet.objects.create(workflow=workflow, version=1, rules=[rule])
    return workflow


def make_rule(name: str, rows: list[dict], decision: str = "review", *, match="all", group="", approvals=1, **extra):
    """One rule as rule sets store it."""
    return {
        "id": extra.pop("id", None) or hashlib.sha256(name.encode()).hexdigest()[:8],
        "name": name,
        "enabled": extra.pop("enabled", True),
        "condition": {"match": match, "rows": rows},
        "outcome": {
            "decision": decision,
            "group": group if decision == "review" else "",
            "approvals": approvals if decision == "review" else 0,
        },
    }


def make_agent(*workflows: Workflow, record_types=("customer", "ticket", "invoice", "refund"), **fields):
    """Returns (agent, token)."""
    agent = Agent(
        name=fields.pop("name", "triage-bot"),
        version=fields.pop("version", "1.4"),
        record_types=list(record_types),
        **fields,
    )
    token = agent.set_token()
    agent.save()
    agent.workflows.set(workflows)
    return agent, token


def ticket_change(ticket: Ticket, operation_id: str = "op-1", **overrides) -> dict:
    """One proposed change body tagging a ticket (no workflow/run)."""
    return {
        "operation_id": operation_id,
        "record_type": "ticket",
        "records": [{"id": ticket.pk, "expected": {"tags": ticket.tags}}],
        "values": {"tags": "billing"},
        "risk": 0.1,
        "confidence": 0.9,
        "reasoning": "Subject mentions a double charge.",
        **overrides,
    }


def propose_waiting(api, record, operation_id: str = "op-1", run: str = "r-1", workflow: str = "ticket-triage", **body):
    """Post a change through the API that routing holds for review (risk 0.9); returns the stored Change."""
    from approvals.models import Change

    if "values" not in body:
        body = {**ticket_change(record, operation_id, risk=0.9), **body}
    else:
        body = {"operation_id": operation_id, "risk": 0.9, "confidence": 0.8, "reasoning": "", **body}
    response = api.post("/api/v1/changes", {"workflow": workflow, "run": run, **body})
    assert response.status_code in (200, 201), response.content
    change = Change.objects.get(pk=response.json()["id"])
    assert change.status == Change.Status.PENDING_REVIEW, change.status
    return change
