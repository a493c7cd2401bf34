"""The review queue page: most urgent first, filters, keyset pagination, counts, what each
item shows, and a fixed number of queries whatever the page size."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Change
from approvals.review import services
from tests.factories import make_agent, make_customer, make_invoice, make_tickets, make_workflow, ticket_change

S = Change.Status


def ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<article class="card change[^"]*" id="change-(\d+)"', page)]


@pytest.fixture
def queue(api, workflow):
    """Twelve waiting ticket changes with distinct values (no groups), risks 0.70..0.92."""
    tickets = make_tickets(12)
    changes = [
        {**ticket_change(t, f"op-{i}", risk=0.70 + i * 0.02), "values": {"tags": f"tag-{i}"}}
        for i, t in enumerate(tickets)
    ]
    assert (
        api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": changes}).status_code
        == 201
    )
    return list(Change.objects.order_by("-risk", "created_at", "id"))


def test_most_urgent_first_then_oldest(client, reviewer, queue):
    Change.objects.filter(pk=queue[1].pk).update(
        risk=queue[0].risk, created_at=queue[0].created_at - timedelta(hours=1)
    )
    client.force_login(reviewer)
    shown = ids_on(client.get("/review/").content.decode())
    assert shown[:3] == [queue[1].pk, queue[0].pk, queue[2].pk]


def test_pages_follow_each_other_without_overlap(client, reviewer, queue):
    client.force_login(reviewer)
    first = client.get("/review/?size=5")
    page1 = ids_on(first.content.decode())
    next_url = re.search(r'rel="next" href="([^"]+)"', first.content.decode()).group(1).replace("&amp;", "&")
    second = client.get(next_url)
    page2 = ids_on(second.content.decode())
    third = client.get(re.search(r'rel="next" href="([^"]+)"', second.content.decode()).group(1).replace("&amp;", "&"))
    page3 = ids_on(third.content.decode())
    assert page1 + page2 + page3 == [c.pk for c in queue]
    assert 'rel="next"' not in third.content.decode()
    prev_url = re.search(r'rel="prev" href="([^"]+)"', third.content.decode()).group(1).replace("&amp;", "&")
    assert ids_on(client.get(prev_url).content.decode()) == page2


def test_a_bad_position_is_a_422_with_a_way_back(client, reviewer, queue):
    client.force_login(reviewer)
    response = client.get("/review/?after=nonsense")
    assert response.status_code == 422
    assert "Not a position in the queue" in response.content.decode()


def test_with_htmx_only_the_queue_is_answered(client, reviewer, queue):
    client.force_login(reviewer)
    response = client.get("/review/?size=5", HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert text.lstrip().startswith('<section id="queue"') and "<html" not in text
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(client, reviewer, queue):
    client.force_login(reviewer)
    response = client.get("/review/?size=5", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in response.content.decode()


def test_filters(client, reviewer, queue, api):
    other = make_workflow("account-sync")
    bot, _ = make_agent(other, name="sync-bot")
    customer = make_customer()
    from tests.conftest import ApiClient

    ApiClient(_token_for(bot)).post(
        "/api/v1/changes",
        {
            "workflow": "account-sync",
            "run": "s-1",
            "operation_id": "email",
            "record_type": "customer",
            "records": [{"id": customer.pk, "expected": {"billing_email": customer.billing_email}}],
            "values": {"billing_email": "billing@northwind.example"},
            "risk": 0.55,
            "confidence": 0.9,
        },
    )
    Change.objects.filter(pk=queue[0].pk).update(created_at=timezone.now() - timedelta(days=2))
    client.force_login(reviewer)

    def shown(query):
        return ids_on(client.get("/review/?" + query).content.decode())

    email = Change.objects.get(operation_id="email").pk
    assert shown("workflow=account-sync") == [email]
    assert shown(f"agent={bot.pk}") == [email]
    assert shown("record_type=customer") == [email]
    assert shown("risk=medium") == [email]
    assert email not in shown("risk=high")
    assert shown("age=1d") == [queue[0].pk]
    assert len(shown("queue=support&size=50")) == 13
    assert shown("queue=finance") == []


def _token_for(agent):
    token = agent.set_token()
    agent.save()
    return token


def test_counts_per_queue_and_matching(client, reviewer, queue, api):
    invoice = make_invoice()
    api.post(
        "/api/v1/changes",
        {
            "workflow": "ticket-triage",
            "run": "r-2",
            "operation_id": "void",
            "record_type": "invoice",
            "records": [{"id": invoice.pk, "expected": {"status": "paid"}}],
            "values": {"status": "void"},
            "risk": 0.9,
            "confidence": 0.9,
        },
    )
    client.force_login(reviewer)
    response = client.get("/review/?size=5")
    assert response.context["page"].queues == [("finance", 1), ("support", 12)]
    assert response.context["page"].matching == 13
    assert "<strong>13</strong> waiting" in response.content.decode()


def test_an_operator_sees_every_queue_but_decides_nothing(client, operator, queue):
    client.force_login(operator)
    page = client.get("/review/?size=25").content.decode()
    assert len(ids_on(page)) == 12
    assert 'data-action="approve"' not in page and "Waits for the support group." in page


def test_a_group_member_sees_only_its_queue(client, finance, queue):
    client.force_login(finance)
    assert ids_on(client.get("/review/").content.decode()) == []


def test_a_page_costs_the_same_queries_whatever_its_size(client, reviewer, queue):
    client.force_login(reviewer)
    client.get("/review/?size=5")
    counts = []
    for size in (5, 12):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/review/?size={size}").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[0] <= 14


def test_it_warns_when_the_record_changed_since_the_agent_looked(client, support, queue):
    ticket = queue[0].record_ids[0]
    from demo.models import Ticket

    record = Ticket.objects.get(pk=ticket)
    record.tags = "urgent"
    record.save()
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert "The record changed since the agent looked: its tags is now urgent; the agent saw (empty)." in page


def test_it_lists_other_changes_waiting_on_the_same_record(client, support, queue, api):
    ticket = queue[0].record_ids[0]
    response = api.post(
        "/api/v1/changes",
        {
            "workflow": "ticket-triage",
            "run": "r-2",
            "operation_id": "again",
            "record_type": "ticket",
            "records": [{"id": ticket, "expected": {"status": "open"}}],
            "values": {"status": "pending"},
            "risk": 0.6,
            "confidence": 0.9,
        },
    )
    other = response.json()["id"]
    client.force_login(support)
    page = client.get(f"/changes/{queue[0].pk}/").content.decode()
    assert f'Also waiting on this record: <a href="/changes/{other}/">change #{other}</a>' in page


def test_long_text_is_shown_as_a_diff(client, support, api):
    from tests.factories import make_ticket

    note = "The customer was charged twice in March. We refunded the first charge and told them by email."
    ticket = make_ticket(internal_note=note)
    new = note.replace("told them by email", "called them to confirm")
    response = api.post(
        "/api/v1/changes",
        {
            "workflow": "ticket-triage",
            "run": "r-3",
            "operation_id": "note",
            "record_type": "ticket",
            "records": [{"id": ticket.pk, "expected": {"internal_note": note}}],
            "values": {"internal_note": new},
            "risk": 0.9,
            "confidence": 0.9,
        },
    )
    client.force_login(support)
    page = client.get(f"/changes/{response.json()['id']}/").content.decode()
    assert "<del>told</del>" in page or "<del>told them by email.</del>" in page
    assert "<ins>called" in page


def test_it_shows_how_many_approvals_a_change_has(client, support, reviewer, queue):
    Change.objects.filter(pk=queue[0].pk).update(approvals_required=2)
    services.approve_change(change=Change.objects.get(pk=queue[0].pk), user=support)
    client.force_login(reviewer)
    page = client.get("/review/").content.decode()
    assert "1 of 2 approvals: sam" in page and "Approve (2 of 2)" in page
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert "You approved this change; it needs another reviewer." in page


def test_keyboard_shortcuts_are_served(client, support, queue):
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert '<script src="/static/review.js" defer>' in page
    assert 'data-action="reason"' in page and 'data-action="edit"' in page


def test_a_cards_queue_is_named_once_when_every_card_is_of_one_queue(client, support, reviewer, queue):
    # sam reviews the support queue only: its name heads the list, not each card.
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert len(ids_on(page)) == 10
    assert "· support queue</span>" not in page
    # rita sees every queue: each card says which one it waits in.
    client.force_login(reviewer)
    page = client.get("/review/").content.decode()
    assert page.count("· support queue</span>") == 10
    # ... unless she narrows the list to one queue.
    assert "· support queue</span>" not in client.get("/review/?queue=support").content.decode()
