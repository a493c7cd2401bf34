"""The home dashboard: per workflow, its state, changes waiting review, applied today, failed, held."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from approvals.models import Change
from tests.factories import make_tickets, make_workflow, ticket_change

S = Change.Status


def test_it_counts_each_workflow_apart(client, operator, api, agent):
    paused = make_workflow("refund-bot", state="paused")
    agent.workflows.add(paused)
    tickets = make_tickets(8)
    body = [ticket_change(t, f"op-{t.pk}", risk=0.9) for t in tickets[:6]]
    api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": body})
    api.post(
        "/api/v1/changes/batch",
        {"workflow": "refund-bot", "run": "p-1", "changes": [ticket_change(tickets[6], "held", risk=0.1)]},
    )
    ids = list(Change.objects.filter(workflow__name="ticket-triage").order_by("id").values_list("pk", flat=True))
    # Statuses set directly: this test is about counting, not moving.
    Change.objects.filter(pk__in=ids[:2]).update(status=S.APPLIED, applied_at=timezone.now())
    Change.objects.filter(pk=ids[2]).update(status=S.APPLIED, applied_at=timezone.now() - timedelta(days=2))
    Change.objects.filter(pk=ids[3]).update(status=S.FAILED)
    Change.objects.filter(pk=ids[4]).update(status=S.CONFLICT)

    client.force_login(operator)
    response = client.get("/")
    rows = {w.name: w for w in response.context["workflows"]}
    triage, refunds = rows["ticket-triage"], rows["refund-bot"]
    assert (triage.state, triage.waiting, triage.applied_today, triage.failed, triage.held) == ("running", 2, 2, 1, 0)
    assert (refunds.state, refunds.waiting, refunds.applied_today, refunds.failed, refunds.held) == (
        "paused",
        0,
        0,
        0,
        1,
    )
    page = response.content.decode()
    assert '<a href="/review/?workflow=ticket-triage">2</a>' in page
    assert '<span class="badge state-paused">paused</span>' in page
