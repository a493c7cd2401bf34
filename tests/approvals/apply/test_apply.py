"""Applying approved changes: one transaction per change, a tagged snapshot, never twice."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.apply.services import apply_changes
from approvals.models import Change, Event
from approvals.review import services
from demo.models import Customer, Ticket
from tests.conftest import wait_until
from tests.factories import make_customer, make_tickets, ticket_change

S = Change.Status


def post(api, body, run="r-1", workflow="ticket-triage"):
    response = api.post("/api/v1/changes", {"workflow": workflow, "run": run, **body})
    assert response.status_code == 201, response.content
    return Change.objects.get(pk=response.json()["id"])


def test_it_applies_a_change_with_a_tagged_snapshot(api, ticket, agent):
    change = post(api, ticket_change(ticket))
    assert apply_changes(change_ids=[change.pk]) == {"applied": 1, "conflict": 0, "failed": 0, "retry": 0, "held": 0}
    ticket.refresh_from_db()
    assert ticket.tags == "billing"
    row = ticket.history.first()
    assert row.history_type == "~"
    assert (row.cs_change_id, row.cs_run_id, row.cs_agent_id) == (change.pk, change.run_id, agent.pk)
    assert row.cs_agent_label == "triage-bot v1.4"
    # The run by the name people know it by (the agent's run id), as on its page.
    assert row.history_change_reason == f"change {change.pk} by triage-bot v1.4 (run {change.run.external_id})"
    change.refresh_from_db()
    assert change.status == S.APPLIED and change.applied_record_ids == [ticket.pk]


def test_the_approver_is_the_history_user(api, ticket, support):
    change = post(api, ticket_change(ticket, risk=0.9))
    services.approve_change(change=change, user=support)
    apply_changes(change_ids=[change.pk])
    assert ticket.history.first().history_user == support


def test_running_the_task_twice_writes_once(api, ticket):
    change = post(api, ticket_change(ticket))
    apply_changes(change_ids=[change.pk])
    assert apply_changes(change_ids=[change.pk])["applied"] == 0
    assert ticket.history.count() == 2  # created + one change


def test_a_changed_record_is_a_conflict_back_to_review(api, ticket):
    change = post(api, ticket_change(ticket))
    ticket.tags = "vip"  # a person changed it after the agent looked
    ticket.save()
    assert apply_changes(change_ids=[change.pk])["conflict"] == 1
    change.refresh_from_db()
    assert change.status == S.CONFLICT
    assert "tags is now vip, the agent expected (empty)" in change.last_error
    assert Event.objects.filter(change=change, to_status=S.CONFLICT, message__contains="tags is now vip").exists()
    ticket.refresh_from_db()
    assert ticket.tags == "vip"


def test_approving_a_conflict_applies_on_the_record_as_it_is_now(api, ticket, support):
    change = post(api, ticket_change(ticket))
    ticket.tags = "vip"
    ticket.save()
    apply_changes(change_ids=[change.pk])
    services.approve_change(change=Change.objects.get(pk=change.pk), user=support)
    assert apply_changes(change_ids=[change.pk])["applied"] == 1
    ticket.refresh_from_db()
    assert ticket.tags == "billing"


def test_a_change_to_many_records_is_all_or_nothing(api, workflow):
    tickets = make_tickets(3)
    tickets[2].tags = "moved"
    tickets[2].save()
    body = ticket_change(tickets[0], records=[{"id": t.pk, "expected": {"tags": ""}} for t in tickets], risk=0.9)
    change = post(api, body)
    services.approve_change(change=change, user=_support())
    apply_changes(change_ids=[change.pk])
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("tags", flat=True)) == {"", "moved"}


def _support():
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("s2")
    user.groups.add(Group.objects.get_or_create(name="support")[0])
    return user


def test_a_missing_record_fails_visibly(api, ticket):
    change = post(api, ticket_change(ticket))
    Ticket.all_objects.filter(pk=ticket.pk).delete()
    assert apply_changes(change_ids=[change.pk])["failed"] == 1
    change.refresh_from_db()
    assert change.status == S.FAILED and "no longer exists" in change.last_error


def test_a_soft_delete_hides_the_record_and_keeps_it(api, agent):
    customer = make_customer()
    agent.record_types = ["customer"]
    agent.save()
    body = {
        "operation_id": "del-1",
        "record_type": "customer",
        "operation": "soft_delete",
        "records": [{"id": customer.pk}],
        "risk": 0.1,
        "confidence": 0.9,
        "reasoning": "duplicate account",
    }
    change = post(api, body)
    apply_changes(change_ids=[change.pk])
    assert not Customer.objects.filter(pk=customer.pk).exists()
    kept = Customer.all_objects.get(pk=customer.pk)
    assert kept.deleted_at is not None and kept.deleted_by == "triage-bot v1.4"


def test_a_create_makes_the_record(api, ticket):
    body = {
        "operation_id": "new-1",
        "record_type": "ticket",
        "operation": "create",
        "values": {"customer": ticket.customer_id, "subject": "Follow-up call"},
        "risk": 0.1,
        "confidence": 0.9,
    }
    change = post(api, body)
    apply_changes(change_ids=[change.pk])
    change.refresh_from_db()
    created = Ticket.objects.get(pk=change.applied_record_ids[0])
    assert created.subject == "Follow-up call"
    assert created.history.get().cs_change_id == change.pk


def test_a_batch_is_applied_with_a_fixed_number_of_claim_queries(api, workflow):
    tickets = make_tickets(50)
    body = {"workflow": "ticket-triage", "run": "r-b", "changes": [ticket_change(t, f"op-{t.pk}") for t in tickets]}
    assert api.post("/api/v1/changes/batch", body).status_code == 201
    ids = list(Change.objects.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        assert apply_changes(change_ids=ids)["applied"] == 50
    # Per change: lock/read the record, save it, its history row, the status move and its event (+ savepoints).
    assert len(queries) < 50 * 12
    assert Ticket.objects.filter(tags="billing").count() == 50


@pytest.mark.django_db(transaction=True)
def test_an_agent_post_succeeds_while_redis_is_down(api, ticket, caplog):
    # The test broker points at a closed port: the enqueue after commit fails, the POST does not.
    response = api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket)})
    assert response.status_code == 201
    assert Change.objects.get().status == S.QUEUED

    def told():
        """the publisher thread saying the sweeper will hand the change over"""
        return "sweeper" in caplog.text

    wait_until(told, timeout=10)
