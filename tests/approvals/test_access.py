"""The one access rule: who sees a change, a run, a record; what a refusal says; whom to ask."""

from __future__ import annotations

from approvals import access
from approvals.models import Change
from tests.factories import make_invoice, propose_waiting
from tests.undo.conftest import propose_run
from undo import host

SCRIPT = "<script>alert(1)</script>"


def test_a_person_in_no_group_reads_no_change_and_no_run(client, outsider, api, ticket):
    change = propose_waiting(api, ticket)
    client.force_login(outsider)
    assert client.get(f"/changes/{change.pk}/").status_code == 404
    assert client.get(f"/changes/{change.pk}/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.get(f"/runs/{change.run_id}/").status_code == 404


def test_owners_see_the_changes_of_their_record_types_and_no_others(client, support, finance, agent, workflow, ticket):
    _, (invoice_change,) = propose_run(agent, workflow, "r-9", [(make_invoice(), {"status": "void"})], review_group="")
    client.force_login(finance)
    assert client.get(f"/changes/{invoice_change.pk}/").status_code == 200  # finance owns invoices
    client.force_login(support)
    assert client.get(f"/changes/{invoice_change.pk}/").status_code == 404
    assert client.get(f"/runs/{invoice_change.run_id}/").status_code == 404


def test_a_person_in_no_group_is_told_whom_to_ask(client, outsider, admin_user, operator):
    client.force_login(outsider)
    response = client.get("/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "You are not in a group yet" in page
    assert "ada (admin)" in page and "otto (operator)" in page


def test_a_refusal_escapes_a_stored_group_name_and_with_htmx_is_the_reason_alone(client, operator, api, ticket):
    change = propose_waiting(api, ticket)
    Change.objects.filter(pk=change.pk).update(review_group=SCRIPT)
    client.force_login(operator)

    page = client.post(f"/changes/{change.pk}/approve")
    assert page.status_code == 403
    assert SCRIPT not in page.content.decode() and "&lt;script&gt;" in page.content.decode()

    fragment = client.post(f"/changes/{change.pk}/approve", HTTP_HX_REQUEST="true")
    text = fragment.content.decode()
    assert fragment.status_code == 403 and "&lt;script&gt;alert(1)&lt;/script&gt; group" in text
    assert "<html" not in text and f'id="change-{change.pk}"' not in text
    assert Change.objects.get(pk=change.pk).status == Change.Status.PENDING_REVIEW


def test_undo_asks_its_host_and_has_its_own_rule_without_one(support, finance, reviewer, outsider):
    assert host.may_undo(support, ["ticket"]) and not host.may_undo(finance, ["ticket"])
    assert host.may_see(reviewer, ["invoice"]) and not host.may_see(support, ["invoice"])
    # Without a host: anyone in a group reads, owner groups act.
    assert host._any_group(support, ["invoice"]) and not host._any_group(outsider, None)
    assert host._owners(finance, ["invoice"]) and not host._owners(reviewer, ["invoice"])


def test_only_people_review(agent, api, ticket):
    change = propose_waiting(api, ticket)
    assert not access.may_review(agent, change) and not access.may_see_change(agent, change)
