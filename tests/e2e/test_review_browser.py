"""End to end, in a real browser: an agent posts over HTTP; a reviewer logs in and, without a
page reload, approves one (by keyboard), rejects one with a reason, corrects one and approves
it, and approves a group of alike changes after confirming; a real Celery worker process
applies them; the records, their history and the agent's signed callbacks show it."""

from __future__ import annotations

import json

import pytest
from countersign_client import Client
from playwright.sync_api import Page, expect

from approvals.models import Change
from demo.models import Customer, Refund, Ticket
from tests.conftest import wait_until
from tests.factories import make_customer, make_invoice, make_tickets, ticket_change
from tests.receiver import signed_ok

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
S = Change.Status


def test_a_reviewer_decides_in_the_browser(
    page: Page, live_server, celery_worker_process, agent_and_token, reviewer, receiver, screenshot
):
    agent, token = agent_and_token
    api = Client(live_server.url, token=token)
    secret = api.register_callback(receiver.url)
    posted = _post_a_run(api)

    # Log in.
    page.goto(f"{live_server.url}/review/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "pw-rita")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Review queue")
    expect(page.locator(".card.group .sentence")).to_have_text(
        "5 changes from run r-118 set the status of tickets to resolved"
    )
    expect(page.locator(f"#change-{posted['email']} .sentence")).to_contain_text(
        "Change the billing email of Northwind Solar (customer #"
    )
    screenshot("review-queue", docs="review-queue.png", full_page=True)
    # Everything below happens in this one page: a full reload would drop this marker.
    page.evaluate("window.stillTheSamePage = true")

    # Approve the most urgent one with the keyboard: j selects it, a approves.
    tag = page.locator(f"#change-{posted['tag']}")
    page.locator("h1").click()
    page.keyboard.press("j")
    expect(tag).to_have_class("card change current")
    page.wait_for_timeout(400)  # a person reads the card first; keys in a quick burst are typing
    page.keyboard.press("a")
    expect(tag.locator(".notice")).to_have_text(f"Approved change {posted['tag']}: a worker applies it.")

    # Reject one, with a reason the agent reads.
    refund = page.locator(f"#change-{posted['refund']}")
    refund.locator("input[name=reason]").fill("The contract grants no refund for this outage.")
    refund.locator("button[data-action=reject]").click()
    expect(refund.locator(".notice")).to_have_text(f"Rejected change {posted['refund']}; the agent reads your reason.")

    # Correct the agent's typo, then approve.
    email = page.locator(f"#change-{posted['email']}")
    email.locator("[data-action=edit]").click()
    email.locator("input[name=billing_email]").fill("billing@northwind.example")
    screenshot("review-edit")
    email.locator("button[data-action=approve]").click()
    expect(email.locator(".notice")).to_have_text(
        f"Approved change {posted['email']} with your corrections: a worker applies it."
    )

    # Approve the group of alike changes, after the confirmation says what will happen.
    page.locator(".card.group [data-action=approve]").click()
    confirm = page.locator(".card.confirm")
    expect(confirm.locator("h2")).to_have_text("Approve 5 changes?")
    screenshot("review-confirm")
    confirm.locator("button[data-action=confirm]").click()
    expect(page.locator("#queue .messages")).to_contain_text("Approved 5 changes.")
    assert page.evaluate("window.stillTheSamePage") is True

    # The worker applied what was approved; the rejected refund was never created.
    def applied():
        """the approved changes applied by the worker process"""
        return Change.objects.filter(status=S.APPLIED).count() == 7

    wait_until(applied, timeout=45)
    customer = Customer.objects.get(pk=posted["customer"])
    assert customer.billing_email == "billing@northwind.example"
    assert Ticket.objects.filter(pk__in=posted["resolved"], status="resolved").count() == 5
    assert Ticket.objects.get(pk=posted["tagged"]).tags == "billing"
    assert not Refund.objects.exists()
    assert Change.objects.get(pk=posted["refund"]).status == S.REJECTED

    # The record's page shows the change in its history, both versions named (its old changes
    # address leads to the record's one page, where the history is the timeline).
    page.goto(f"{live_server.url}/records/customer/{customer.pk}/changes/")
    history = page.locator("ol.timeline")
    expect(history).to_contain_text("billing email: ap@northwind.example → billing@northwind.example")
    expect(history).to_contain_text("values corrected by rita")
    expect(history).to_contain_text(f"change #{posted['email']}")
    screenshot("record-history", full_page=True)

    # The agent learns every decision and what came of it: through the API and by signed callbacks.
    assert api.change(posted["refund"])["reject_reason"] == "The contract grants no refund for this outage."
    assert api.change(posted["email"])["edited_values"] == {"billing_email": "billing@northwind.example"}

    def all_told():
        """a signed callback for each of the 8 decisions and each of the 7 changes applied"""
        return len(receiver.received) >= 15

    wait_until(all_told, timeout=30)
    assert all(signed_ok(secret, headers, body) for headers, body in receiver.received)
    told = [json.loads(body) for _, body in receiver.received]
    outcomes = {(p["change"], p["outcome"]) for p in told}
    assert (posted["refund"], "rejected") in outcomes and (posted["email"], "approved") in outcomes
    applied = {p["change"]: p["record_ids"] for p in told if p["outcome"] == "applied"}
    assert len(applied) == 7 and applied[posted["tag"]] == [posted["tagged"]]


def _post_a_run(api: Client) -> dict:
    customer = make_customer(name="Northwind Solar", billing_email="ap@northwind.example")
    tickets = make_tickets(6, customer=customer)
    invoice = make_invoice(customer=customer)
    tag = api.propose(workflow="ticket-triage", run="r-117", **ticket_change(tickets[0], "tag", risk=0.95))
    refund = api.propose(
        workflow="ticket-triage",
        run="r-117",
        operation_id="refund",
        record_type="refund",
        operation="create",
        values={"invoice": invoice.pk, "amount": "112.50", "status": "requested"},
        risk=0.9,
        confidence=0.7,
        reasoning="Northwind Solar reported a partial outage; the contract grants 25% back.",
    )
    email = api.propose(
        workflow="ticket-triage",
        run="r-117",
        operation_id="email",
        record_type="customer",
        records=[{"id": customer.pk, "expected": {"billing_email": "ap@northwind.example"}}],
        values={"billing_email": "billing@northwind.exmaple"},
        risk=0.7,
        confidence=0.8,
        reasoning="An email signed by Northwind Solar's accounts team asks to send invoices to billing@.",
    )
    batch = api.propose_batch(
        workflow="ticket-triage",
        run="r-118",
        changes=[
            {
                **ticket_change(t, f"resolve-{t.pk}", risk=0.8),
                "records": [{"id": t.pk, "expected": {"status": "open"}}],
                "values": {"status": "resolved"},
                "reasoning": "The customer replied “thanks, works now”; no open questions remain.",
            }
            for t in tickets[1:]
        ],
    )
    assert {c["status"] for c in [tag, refund, email, *batch["changes"]]} == {"pending_review"}
    return {
        "tag": tag["id"],
        "tagged": tickets[0].pk,
        "refund": refund["id"],
        "email": email["id"],
        "customer": customer.pk,
        "resolved": [t.pk for t in tickets[1:]],
    }
