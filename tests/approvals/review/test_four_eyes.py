"""Four-eyes: a change needing N approvals needs N distinct reviewers of the right group;
nobody approves twice; agents never approve; concurrent decisions count once."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Group, User
from django.db import close_old_connections

from approvals import access
from approvals.lifecycle import ChangeMoved
from approvals.models import Approval, Change, Event
from approvals.review import services
from tests.factories import propose_waiting

S = Change.Status


@pytest.fixture
def needs_two(api, ticket):
    change = propose_waiting(api, ticket)
    Change.objects.filter(pk=change.pk).update(approvals_required=2)
    change.refresh_from_db()
    return change


def test_one_approval_of_two_keeps_it_waiting(needs_two, support):
    services.approve_change(change=needs_two, user=support)
    needs_two.refresh_from_db()
    assert needs_two.status == S.PENDING_REVIEW
    assert Approval.objects.filter(change=needs_two).count() == 1
    event = Event.objects.filter(change=needs_two, kind=Event.Kind.APPROVED).get()
    assert event.message == (
        f"sam: approved change {needs_two.pk} (1 of 2 approvals). "
        "Next: it waits for 1 more approval from another reviewer in support."
    )


def test_a_second_reviewer_completes_it(needs_two, support, reviewer):
    services.approve_change(change=needs_two, user=support)
    services.approve_change(change=needs_two, user=reviewer)
    needs_two.refresh_from_db()
    assert needs_two.status == S.QUEUED and needs_two.approver == reviewer
    approved = Event.objects.get(change=needs_two, to_status=S.APPROVED)
    assert "2 of 2 approvals" in approved.message


def test_nobody_approves_twice(needs_two, support):
    services.approve_change(change=needs_two, user=support)
    with pytest.raises(services.NotAllowed, match="already approved"):
        services.approve_change(change=needs_two, user=support)
    needs_two.refresh_from_db()
    assert needs_two.status == S.PENDING_REVIEW
    assert Approval.objects.filter(change=needs_two).count() == 1


def test_the_second_reviewer_must_be_in_the_right_group(needs_two, support, finance):
    services.approve_change(change=needs_two, user=support)
    with pytest.raises(services.NotAllowed, match="not in the support group"):
        services.approve_change(change=needs_two, user=finance)
    assert Approval.objects.filter(change=needs_two).count() == 1


def test_an_agent_identity_can_never_approve(needs_two, agent):
    assert not access.may_review(agent, needs_two)
    with pytest.raises(services.NotAllowed):
        services.approve_change(change=needs_two, user=agent)
    assert not Approval.objects.exists()


def test_an_agent_token_on_the_approve_url_is_refused(client, api, ticket, agent_and_token):
    change = propose_waiting(api, ticket)
    _, token = agent_and_token
    response = client.post(f"/changes/{change.pk}/approve", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 302 and "/login/" in response["Location"]
    change.refresh_from_db()
    assert change.status == S.PENDING_REVIEW and not Approval.objects.exists()


def test_one_rejection_decides_even_after_an_approval(needs_two, support, reviewer):
    services.approve_change(change=needs_two, user=support)
    services.reject_change(change=needs_two, user=reviewer, reason="Wrong customer")
    needs_two.refresh_from_db()
    assert needs_two.status == S.REJECTED and needs_two.reject_reason == "Wrong customer"


def test_a_correction_needs_fresh_approvals(needs_two, support, reviewer):
    services.approve_change(change=needs_two, user=support)
    # rita corrects the values: sam approved the agent's version, not hers.
    services.approve_change(change=needs_two, user=reviewer, values={"tags": "refunds"})
    needs_two.refresh_from_db()
    assert needs_two.status == S.PENDING_REVIEW
    # sam approves the corrected version: his one approval row is renewed, and now it counts.
    services.approve_change(change=needs_two, user=support)
    needs_two.refresh_from_db()
    assert needs_two.status == S.QUEUED
    assert Approval.objects.filter(change=needs_two).count() == 2


def test_a_conflict_needs_a_fresh_decision(api, ticket, support, settings):
    from approvals.apply.services import apply_changes

    change = propose_waiting(api, ticket)
    services.approve_change(change=change, user=support)
    ticket.tags = "changed by a person"
    ticket.save()
    apply_changes(change_ids=[change.pk])
    change.refresh_from_db()
    assert change.status == S.CONFLICT
    # sam's approval was for the record as it was: he decides again, and it counts.
    services.approve_change(change=change, user=support)
    change.refresh_from_db()
    assert change.status == S.QUEUED
    assert change.expected == {str(ticket.pk): {"tags": "changed by a person"}}


@pytest.mark.django_db(transaction=True)
def test_two_last_approvals_at_the_same_moment_decide_once(api, ticket, support, reviewer):
    change = propose_waiting(api, ticket)
    Change.objects.filter(pk=change.pk).update(approvals_required=2)
    third = User.objects.create_user("tina")
    third.groups.add(Group.objects.get(name="support"))
    services.approve_change(change=Change.objects.get(pk=change.pk), user=third)
    results = _at_once(
        lambda: services.approve_change(change=Change.objects.get(pk=change.pk), user=User.objects.get(pk=support.pk)),
        lambda: services.approve_change(change=Change.objects.get(pk=change.pk), user=User.objects.get(pk=reviewer.pk)),
    )
    change.refresh_from_db()
    assert change.status == S.QUEUED
    assert Event.objects.filter(change=change, to_status=S.APPROVED).count() == 1
    # The one that came second was told: already approved, nothing done.
    assert sorted(type(r).__name__ for r in results) == ["Change", "ChangeMoved"]


@pytest.mark.django_db(transaction=True)
def test_approve_and_reject_at_the_same_moment_one_counts(api, ticket, support, reviewer):
    change = propose_waiting(api, ticket)
    results = _at_once(
        lambda: services.approve_change(change=Change.objects.get(pk=change.pk), user=User.objects.get(pk=support.pk)),
        lambda: services.reject_change(
            change=Change.objects.get(pk=change.pk), user=User.objects.get(pk=reviewer.pk), reason="no"
        ),
    )
    change.refresh_from_db()
    decisions = Event.objects.filter(change=change, to_status__in=[S.APPROVED, S.REJECTED]).count()
    assert decisions == 1
    assert sum(isinstance(r, ChangeMoved) for r in results) == 1
    assert change.status in (S.QUEUED, S.REJECTED)


def _at_once(*calls):
    """Run `calls` in threads released together; returns each result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 — the test inspects it
            results[i] = exc
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results
