"""Alike changes decided together: the confirmation says exactly what will happen; the POST
decides each change through the same service, one approval per change."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from approvals.apply.services import APPLY_TASK
from approvals.models import Approval, Change, Event
from approvals.review import services
from countersign.outbox.models import Dispatch
from tests.factories import make_tickets, ticket_change

S = Change.Status


@pytest.fixture
def resolutions(api, workflow):
    """Five alike changes (resolve the ticket) and one other, in run r-118."""
    tickets = make_tickets(6)
    changes = [
        {
            **ticket_change(t, f"resolve-{t.pk}", risk=0.8),
            "records": [{"id": t.pk, "expected": {"status": "open"}}],
            "values": {"status": "resolved"},
        }
        for t in tickets[:5]
    ]
    changes.append({**ticket_change(tickets[5], "tag", risk=0.9), "values": {"tags": "vip"}})
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-118", "changes": changes})
    assert response.status_code == 201
    return list(Change.objects.filter(values={"status": "resolved"}).order_by("id"))


def group_query(change: Change, **extra) -> str:
    return urlencode(
        {
            "run": change.run_id,
            "record_type": "ticket",
            "operation": "update",
            "values": json.dumps({"status": "resolved"}),
            **extra,
        }
    )


def test_the_queue_folds_alike_changes_into_one_group(client, support, resolutions):
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert "5 changes from run r-118 set the status of tickets to resolved" in page
    assert "Approve all 5…" in page
    # The group stands once; the odd one out is shown on its own.
    assert page.count('class="card group"') == 1 and page.count('class="card change"') == 1


def test_open_the_list_shows_each_change(client, support, resolutions):
    client.force_login(support)
    page = client.get("/review/?" + group_query(resolutions[0])).content.decode()
    assert page.count('class="card change"') == 5
    assert "5 changes from run r-118 set the status of tickets to resolved" in page


def test_the_confirmation_says_exactly_what_will_happen(client, support, resolutions):
    client.force_login(support)
    response = client.get("/review/alike?" + group_query(resolutions[0], action="approve"))
    page = response.content.decode()
    assert "Approve 5 changes?" in page
    assert "add your approval to each of them" in page
    assert f'name="ids" value="{",".join(str(c.pk) for c in resolutions)}"' in page
    # Nothing happened yet.
    assert not Approval.objects.exists()
    assert Change.objects.filter(status=S.PENDING_REVIEW).count() == 6


def test_approve_all_approves_each_one(client, support, resolutions):
    client.force_login(support)
    ids = ",".join(str(c.pk) for c in resolutions)
    response = client.post("/review/alike", {"ids": ids, "action": "approve", "next": "/review/"})
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert Change.objects.filter(pk__in=[c.pk for c in resolutions], status=S.QUEUED).count() == 5
    assert Approval.objects.filter(reviewer=support).count() == 5
    assert Event.objects.filter(to_status=S.APPROVED, actor=support).count() == 5
    assert Change.objects.get(values={"tags": "vip"}).status == S.PENDING_REVIEW


def test_a_bulk_approval_is_one_approval_per_change(support, resolutions):
    Change.objects.filter(pk=resolutions[0].pk).update(approvals_required=2)
    outcome = services.approve_many(change_ids=[c.pk for c in resolutions], user=support)
    assert outcome.awaiting_more == [resolutions[0].pk]
    assert sorted(outcome.decided) == [c.pk for c in resolutions[1:]]
    assert Change.objects.get(pk=resolutions[0].pk).status == S.PENDING_REVIEW
    # Approving again is no second approval.
    again = services.approve_many(change_ids=[resolutions[0].pk], user=support)
    assert "already approved" in again.skipped[resolutions[0].pk]


def test_a_change_decided_meanwhile_is_left_alone(support, reviewer, resolutions):
    services.reject_change(change=resolutions[0], user=reviewer, reason="not yet")
    outcome = services.approve_many(change_ids=[c.pk for c in resolutions], user=support)
    assert list(outcome.skipped) == [resolutions[0].pk]
    assert Change.objects.get(pk=resolutions[0].pk).status == S.REJECTED


def test_bulk_approvals_are_enqueued_in_one_batch(support, resolutions):
    services.approve_many(change_ids=[c.pk for c in resolutions], user=support)
    batches = [d.args[0] for d in Dispatch.objects.filter(task=APPLY_TASK)]
    assert batches == [[c.pk for c in resolutions]]


def test_reject_all_needs_a_reason(client, support, resolutions):
    client.force_login(support)
    ids = ",".join(str(c.pk) for c in resolutions)
    response = client.post("/review/alike", {"ids": ids, "action": "reject", "reason": " "}, follow=True)
    assert "Say why you reject these changes" in response.content.decode()
    assert Change.objects.filter(status=S.REJECTED).count() == 0
    client.post("/review/alike", {"ids": ids, "action": "reject", "reason": "Customer still waits"})
    rejected = Change.objects.filter(status=S.REJECTED)
    assert rejected.count() == 5 and {c.reject_reason for c in rejected} == {"Customer still waits"}


def test_with_htmx_the_queue_is_answered_in_place(client, support, resolutions):
    client.force_login(support)
    ids = ",".join(str(c.pk) for c in resolutions)
    response = client.post(
        "/review/alike", {"ids": ids, "action": "approve", "next": "/review/"}, HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert response.status_code == 200 and page.lstrip().startswith('<section id="queue"')
    assert "Approved 5 changes." in page
    assert page.count('class="card change"') == 1  # the odd one out still waits


def test_an_outsider_decides_nothing(client, outsider, resolutions):
    client.force_login(outsider)
    page = client.get("/review/alike?" + group_query(resolutions[0], action="approve")).content.decode()
    assert "None of these changes is in your queues" in page
    ids = ",".join(str(c.pk) for c in resolutions)
    client.post("/review/alike", {"ids": ids, "action": "approve"})
    assert not Approval.objects.exists()
