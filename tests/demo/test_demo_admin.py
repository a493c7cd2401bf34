"""The demo app's admin stands for the team's own application: its owners edit records there,
simple-history records who, and an undo then sees their edit as someone else's."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from demo.management.commands.seed_demo import let_owners_edit_their_records
from demo.models import Ticket
from tests.factories import make_agent, make_tickets
from tests.undo.conftest import apply_run


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def editors(support, finance):
    let_owners_edit_their_records()
    for user in (support, finance):
        user.refresh_from_db()
    return support, finance


def _edit(client, ticket, **values):
    form = {
        "customer": ticket.customer_id,
        "subject": ticket.subject,
        "status": ticket.status,
        "tags": ticket.tags,
        "internal_note": ticket.internal_note,
        **values,
    }
    return client.post(f"/admin/demo/ticket/{ticket.pk}/change/", form)


def test_an_owner_edits_a_ticket_in_the_admin_and_the_history_says_who(editors):
    support, _ = editors
    (ticket,) = make_tickets(1)
    client = client_for(support)
    assert client.get("/admin/demo/ticket/").status_code == 200
    form = client.get(f"/admin/demo/ticket/{ticket.pk}/change/").content.decode()
    assert f'href="/records/ticket/{ticket.pk}/"' in form  # "View on site": its Countersign page

    response = _edit(client, ticket, status="closed")

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == "closed"
    row = Ticket.history.filter(id=ticket.pk).first()
    assert (row.history_user, row.cs_change_id, row.cs_agent_id) == (support, None, None)
    page = client.get(f"/records/ticket/{ticket.pk}/").content.decode()
    assert "status: open → closed" in page and "· sam\n" in page and "edited in the demo app&#x27;s admin" in page


def test_an_edit_in_the_admin_is_a_conflict_for_an_undo(editors, workflow):
    support, _ = editors
    run_agent = make_agent(workflow, name="triage-bot")[0]
    tickets = make_tickets(2)
    run, _ = apply_run(run_agent, workflow, "r-1", [(t, {"status": "resolved"}) for t in tickets])
    _edit(client_for(support), Ticket.objects.get(pk=tickets[0].pk), status="closed")

    page = client_for(support).get(f"/runs/{run.pk}/undo").content.decode()

    assert "<strong>1</strong> in conflict" in page
    assert "since then sam set it to closed" in page


def test_each_owner_edits_only_their_records_and_nobody_hard_deletes(editors):
    support, finance = editors
    (ticket,) = make_tickets(1)
    assert client_for(finance).get(f"/admin/demo/ticket/{ticket.pk}/change/").status_code == 403
    assert client_for(finance).get("/admin/demo/invoice/").status_code == 200
    # Governed records are soft-deleted (and restored) through Countersign, never deleted for good.
    assert client_for(support).get(f"/admin/demo/ticket/{ticket.pk}/delete/").status_code == 403
    assert _edit(client_for(finance), ticket, status="closed").status_code == 403


def test_people_outside_the_owner_groups_cannot_edit(reviewer, operator):
    (ticket,) = make_tickets(1)
    for user in (reviewer, operator):
        assert client_for(user).get(f"/admin/demo/ticket/{ticket.pk}/change/").status_code == 302  # to the login


def test_the_seed_lets_the_demo_owners_edit_their_records(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", stdout=io.StringIO())
    support, finance = User.objects.get(username="support"), User.objects.get(username="finance")
    assert support.is_staff and finance.is_staff
    assert support.has_perm("demo.change_ticket") and support.has_perm("demo.change_customer")
    assert finance.has_perm("demo.change_invoice") and not finance.has_perm("demo.change_ticket")
    assert not User.objects.get(username="reviewer").is_staff
