"""Reviewers learn what waits: one digest email per group for high-risk changes waiting
longer than their workflow's threshold, each change listed once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from approvals.models import Change
from approvals.review.digest import send_review_digests
from tests.factories import make_invoice, make_tickets, propose_waiting


@pytest.fixture
def late(api, workflow, support, finance):
    support.email, finance.email = "sam@example.com", "fiona@example.com"
    support.save()
    finance.save()
    workflow.review_wait_threshold = 30
    workflow.save()
    tickets = make_tickets(4)
    changes = [propose_waiting(api, t, f"op-{t.pk}") for t in tickets]
    invoice = make_invoice()
    changes.append(
        propose_waiting(
            api,
            invoice,
            "void-1",
            record_type="invoice",
            records=[{"id": invoice.pk, "expected": {"status": "paid"}}],
            values={"status": "void"},
        )
    )
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Change.objects.update(updated_at=an_hour_ago, created_at=an_hour_ago)
    # Not overdue: waiting 10 minutes only; and one that is not high risk.
    Change.objects.filter(pk=changes[0].pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    Change.objects.filter(pk=changes[1].pk).update(risk=0.6)
    return changes


def test_one_digest_per_group_lists_the_overdue_high_risk_changes(late, mailoutbox):
    assert send_review_digests() == {"finance": 1, "support": 2}
    assert len(mailoutbox) == 2
    by_to = {tuple(m.to): m for m in mailoutbox}
    support_mail = by_to[("sam@example.com",)]
    assert support_mail.subject == "[Countersign] 2 high-risk changes waiting too long for support review"
    assert f"/changes/{late[2].pk}/" in support_mail.body and f"/changes/{late[3].pk}/" in support_mail.body
    assert f"/changes/{late[0].pk}/" not in support_mail.body  # not waiting long enough
    assert f"/changes/{late[1].pk}/" not in support_mail.body  # not high risk
    assert "Change the tags of ticket #" in support_mail.body
    assert "threshold 30 min" in support_mail.body
    assert by_to[("fiona@example.com",)].subject.startswith("[Countersign] 1 high-risk change waiting")


def test_each_change_is_listed_once(late, mailoutbox):
    send_review_digests()
    assert send_review_digests() == {}
    assert len(mailoutbox) == 2
    assert Change.objects.filter(digest_sent_at__isnull=False).count() == 3


def test_a_change_that_becomes_overdue_later_gets_its_own_digest(late, mailoutbox):
    send_review_digests()
    later = timezone.now() + timedelta(minutes=25)
    assert send_review_digests(now=later) == {"support": 1}
    assert f"/changes/{late[0].pk}/" in mailoutbox[-1].body


def test_decided_changes_are_not_listed(late, mailoutbox, support):
    from approvals.review import services

    for change in late[2:4]:
        services.reject_change(change=change, user=support, reason="no")
    assert send_review_digests() == {"finance": 1}


def test_it_runs_periodically():
    entry = settings.CELERY_BEAT_SCHEDULE["review-digests"]
    assert entry["task"] == "approvals.tasks.send_review_digests_task"


def test_a_group_nobody_can_be_emailed_in_keeps_its_changes_for_a_later_digest(late, mailoutbox, support):
    support.email = ""
    support.save()
    assert send_review_digests() == {"finance": 1}
    # Nobody in support was e-mailed: its changes are not marked as listed.
    assert Change.objects.filter(review_group="support", digest_sent_at__isnull=False).count() == 0
    support.email = "sam@example.com"
    support.save()
    assert send_review_digests() == {"support": 2}
    assert mailoutbox[-1].to == ["sam@example.com"]


def test_digest_links_use_the_configured_site_url(late, mailoutbox, settings):
    settings.SITE_URL = "http://127.0.0.1:18080/"
    send_review_digests()
    body = {tuple(m.to): m for m in mailoutbox}[("sam@example.com",)].body
    assert f"http://127.0.0.1:18080/changes/{late[2].pk}/" in body
    assert "http://127.0.0.1:18080/review/?risk=high" in body
