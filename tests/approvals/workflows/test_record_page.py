"""A record's page: current values, the changes proposed on it and its tagged history."""

from __future__ import annotations

from approvals.apply.services import apply_changes
from approvals.review import services
from tests.factories import propose_waiting


def test_it_shows_the_applied_change_in_the_history(client, support, api, ticket):
    change = propose_waiting(api, ticket)
    services.approve_change(change=change, user=support, values={"tags": "refunds"})
    apply_changes(change_ids=[change.pk])
    client.force_login(support)
    # The changes page is part of the record's page now: its old address leads there.
    page = client.get(f"/records/ticket/{ticket.pk}/changes/", follow=True).content.decode()
    assert "tags: (empty) → refunds" in page
    assert f'href="/changes/{change.pk}/">change #{change.pk}</a>' in page
    assert "values corrected by sam" in page
    assert "set the tags to refunds (corrected by sam)" in page
    assert '<span class="badge applied">applied</span>' in page


def test_outsiders_get_a_404(client, outsider, ticket, finance):
    client.force_login(outsider)
    assert client.get(f"/records/ticket/{ticket.pk}/changes/").status_code == 404
    client.force_login(finance)  # finance owns invoices, not tickets
    assert client.get(f"/records/ticket/{ticket.pk}/changes/").status_code == 404
    assert client.get("/records/nonsense/1/changes/").status_code == 404
