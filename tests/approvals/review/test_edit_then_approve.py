"""Edit then approve: the reviewer's correction is applied; the agent's proposal is kept;
both show in the change's history and in the API."""

from __future__ import annotations

import pytest

from approvals.apply.services import apply_changes
from approvals.models import Approval, Change, Event
from approvals.review import services
from tests.factories import make_customer, propose_waiting

S = Change.Status


@pytest.fixture
def email_change(api):
    customer = make_customer(billing_email="ap@northwind.example")
    change = propose_waiting(
        api,
        customer,
        record_type="customer",
        records=[{"id": customer.pk, "expected": {"billing_email": "ap@northwind.example"}}],
        values={"billing_email": "billing@northwind.exmaple"},
    )
    return change, customer


def test_the_correction_is_applied_and_the_proposal_kept(email_change, support):
    change, customer = email_change
    services.approve_change(change=change, user=support, values={"billing_email": "billing@northwind.example"})
    change.refresh_from_db()
    assert change.values == {"billing_email": "billing@northwind.exmaple"}
    assert change.edited_values == {"billing_email": "billing@northwind.example"}
    assert change.edited_by == support and change.status == S.QUEUED
    assert Approval.objects.get(change=change).edited_values == change.edited_values

    assert apply_changes(change_ids=[change.pk])["applied"] == 1
    customer.refresh_from_db()
    assert customer.billing_email == "billing@northwind.example"
    row = customer.history.first()
    assert row.cs_change_id == change.pk and row.history_user == support
    assert "values corrected by sam" in row.history_change_reason
    assert "(the agent proposed billing email billing@northwind.exmaple)" in row.history_change_reason


def test_both_versions_are_in_the_history(email_change, support, client):
    change, _ = email_change
    services.approve_change(change=change, user=support, values={"billing_email": "billing@northwind.example"})
    event = Event.objects.get(change=change, kind=Event.Kind.CORRECTED)
    assert "the agent proposed billing@northwind.exmaple, sam set billing@northwind.example" in event.message
    assert event.details["agent"] == {"billing_email": "billing@northwind.exmaple"}
    assert event.details["reviewer"] == {"billing_email": "billing@northwind.example"}
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/").content.decode()
    assert "agent triage-bot v1.4" in page and "sam (reviewer, applied)" in page
    assert "the agent proposed <q>billing@northwind.exmaple</q>" in page


def test_the_agent_reads_the_correction(email_change, support, api):
    change, _ = email_change
    services.approve_change(change=change, user=support, values={"billing_email": "billing@northwind.example"})
    body = api.get(f"/api/v1/changes/{change.pk}").json()
    assert body["values"] == {"billing_email": "billing@northwind.exmaple"}
    assert body["edited_values"] == {"billing_email": "billing@northwind.example"}
    assert body["approvals"][0]["reviewer"] == "sam" and body["approvals"][0]["edited"] is True
    assert body["review"] == "approved"


def test_a_value_that_does_not_fit_changes_nothing(email_change, support):
    change, _ = email_change
    with pytest.raises(services.InvalidEdit) as caught:
        services.approve_change(change=change, user=support, values={"billing_email": "not an email"})
    assert "billing_email" in caught.value.errors
    change.refresh_from_db()
    assert change.status == S.PENDING_REVIEW and change.edited_values is None
    assert not Approval.objects.exists()


def test_only_proposed_fields_can_be_corrected(email_change, support):
    change, _ = email_change
    with pytest.raises(services.InvalidEdit, match="did not propose"):
        services.approve_change(change=change, user=support, values={"tier": "vip"})


def test_the_same_values_are_a_plain_approval(email_change, support):
    change, _ = email_change
    services.approve_change(change=change, user=support, values=dict(change.values))
    change.refresh_from_db()
    assert change.edited_values is None and change.status == S.QUEUED
    assert not Event.objects.filter(change=change, kind=Event.Kind.CORRECTED).exists()


def test_the_edit_page_works_without_javascript(email_change, support, client):
    change, customer = email_change
    client.force_login(support)
    page = client.get(f"/changes/{change.pk}/edit")
    assert page.status_code == 200 and 'name="billing_email"' in page.content.decode()
    response = client.post(f"/changes/{change.pk}/edit", {"billing_email": "billing@northwind.example"})
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.edited_values == {"billing_email": "billing@northwind.example"}


def test_an_invalid_correction_re_renders_with_its_error(email_change, support, client):
    change, _ = email_change
    client.force_login(support)
    response = client.post(f"/changes/{change.pk}/edit", {"billing_email": "nope"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "Enter a valid email address." in response.content.decode()
    change.refresh_from_db()
    assert change.status == S.PENDING_REVIEW


def test_with_htmx_the_edit_form_replaces_the_item(email_change, support, client):
    change, _ = email_change
    client.force_login(support)
    response = client.get(f"/changes/{change.pk}/edit", HTTP_HX_REQUEST="true")
    text = response.content.decode()
    assert text.lstrip().startswith(f'<article class="card change" id="change-{change.pk}"')
    assert "Approve the corrected version" in text
    done = client.post(f"/changes/{change.pk}/edit", {"billing_email": "x@northwind.example"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200 and f"Approved change {change.pk} with your corrections" in done.content.decode()


def test_approving_the_correction_form_unchanged_does_not_claim_corrections(email_change, support, client):
    change, _ = email_change
    client.force_login(support)
    done = client.post(
        f"/changes/{change.pk}/edit", {"billing_email": "billing@northwind.exmaple"}, HTTP_HX_REQUEST="true"
    )
    page = done.content.decode()
    assert done.status_code == 200 and f"Approved change {change.pk}: a worker applies it." in page
    assert "with your corrections" not in page
    assert Approval.objects.get(change=change).edited_values is None
