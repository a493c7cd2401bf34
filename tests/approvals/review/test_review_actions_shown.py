"""People see only the actions they may take; a refusal says the true reason, with a 403."""

from __future__ import annotations

from approvals.models import Approval, Change
from approvals.review import services
from tests.approvals.review.test_bulk_decisions import group_query, resolutions  # noqa: F401 (fixture)

S = Change.Status


def test_an_operator_sees_no_group_decision(client, operator, resolutions):  # noqa: F811
    client.force_login(operator)
    page = client.get("/review/").content.decode()
    assert "5 changes from run r-118 set the status of tickets to resolved" in page  # operators watch
    assert "Approve all" not in page and "Reject all" not in page
    assert "They wait for the support group" in page
    assert "Open the list" in page
    listed = client.get("/review/?" + group_query(resolutions[0])).content.decode()
    assert "Approve all" not in listed and "Reject all" not in listed


def test_an_operator_asking_for_a_group_decision_is_told_why_not(client, operator, resolutions):  # noqa: F811
    client.force_login(operator)
    for action in ("approve", "reject"):
        response = client.get("/review/alike?" + group_query(resolutions[0], action=action))
        page = response.content.decode()
        assert response.status_code == 403
        assert "You are not in the support group that reviews these changes" in page
        assert "it was decided" not in page and "you already approved" not in page


def test_an_operator_posting_a_group_decision_gets_a_403_with_the_reason(client, operator, resolutions):  # noqa: F811
    client.force_login(operator)
    ids = ",".join(str(c.pk) for c in resolutions)
    response = client.post(
        "/review/alike", {"ids": ids, "action": "approve", "next": "/review/"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert "not in the support group" in page
    assert "decided by someone else" not in page
    assert not Approval.objects.exists()


def test_a_group_you_approved_says_so(client, support, resolutions):  # noqa: F811
    Change.objects.filter(pk__in=[c.pk for c in resolutions]).update(approvals_required=2)
    services.approve_many(change_ids=[c.pk for c in resolutions], user=support)
    client.force_login(support)
    response = client.get("/review/alike?" + group_query(resolutions[0], action="approve"))
    assert response.status_code == 403
    page = response.content.decode()
    assert "You already approved each of them; they wait for another reviewer" in page


def test_a_group_decided_meanwhile_says_so(client, support, reviewer, resolutions):  # noqa: F811
    services.reject_many(change_ids=[c.pk for c in resolutions], user=reviewer, reason="no")
    client.force_login(support)
    response = client.get("/review/alike?" + group_query(resolutions[0], action="approve"))
    assert response.status_code == 409
    assert "Nothing in this group waits any more: it was decided meanwhile" in response.content.decode()


def test_an_operator_opening_the_correction_form_is_told_why_not(client, operator, resolutions):  # noqa: F811
    client.force_login(operator)
    response = client.get(f"/changes/{resolutions[0].pk}/edit")
    assert response.status_code == 403
    page = response.content.decode()
    assert "You are not in the support group that reviews this change." in page
    assert 'name="status"' not in page  # no form to fill in
