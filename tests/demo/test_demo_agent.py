"""The demo agent posts its runs through the real HTTP API, including the bad run to undo."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from approvals.models import HIGH_RISK, Change, Run
from approvals.review.digest import send_review_digests


@pytest.mark.django_db(transaction=True)
def test_the_demo_agent_posts_four_runs_over_http(live_server, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    # Without --url the agent posts to the site's own address (bin/run sets it from $PORT).
    settings.SITE_URL = live_server.url
    call_command("seed_demo")
    call_command("demo_agent", seed=1)
    runs = {r.external_id.rsplit("-", 1)[0]: r for r in Run.objects.all()}
    assert set(runs) == {"triage", "accounts", "refunds", "bad-tags"}
    bad = runs["bad-tags"].changes
    assert bad.count() == 60
    assert bad.filter(status=Change.Status.QUEUED).count() > 20  # the rules let most of it through
    assert not runs["refunds"].changes.exclude(status=Change.Status.PENDING_REVIEW).exists()
    # Running it again with --if-first posts nothing.
    call_command("demo_agent", url=live_server.url, if_first=True)
    assert Run.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_the_demo_sends_a_review_digest_once_high_risk_changes_wait(live_server, settings, tmp_path, mailoutbox):
    settings.VAR_DIR = tmp_path
    settings.SITE_URL = live_server.url
    call_command("seed_demo")
    call_command("demo_agent", seed=1)
    waiting = Change.objects.filter(status=Change.Status.PENDING_REVIEW, risk__gte=HIGH_RISK)
    assert waiting.exists()
    Change.objects.update(updated_at=timezone.now() - timedelta(minutes=11))
    sent = send_review_digests()
    assert sent and sum(sent.values()) == waiting.count()
    recipients = {address for mail in mailoutbox for address in mail.to}
    assert "support@countersign-demo.example" in recipients
    assert f"{live_server.url}/changes/" in mailoutbox[0].body


def test_from_another_shell_the_demo_agent_posts_where_bin_run_serves(live_server, settings, tmp_path, monkeypatch):
    # bin/run on PORT=18600 writes its address to var/; a shell without PORT still reaches it.
    monkeypatch.delenv("SITE_URL", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    settings.VAR_DIR = tmp_path
    settings.SITE_URL = "http://127.0.0.1:9"  # the default this shell would guess: nothing listens there
    (tmp_path / "site_url").write_text(live_server.url + "\n")
    call_command("seed_demo")
    call_command("demo_agent", seed=1)
    assert Run.objects.count() == 4
