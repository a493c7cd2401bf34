"""The demo agent posts its runs through the real HTTP API, including the bad run to undo."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from approvals.models import Change, Run


@pytest.mark.django_db(transaction=True)
def test_the_demo_agent_posts_four_runs_over_http(live_server, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    call_command("demo_agent", url=live_server.url, seed=1)
    runs = {r.external_id.rsplit("-", 1)[0]: r for r in Run.objects.all()}
    assert set(runs) == {"triage", "accounts", "refunds", "bad-tags"}
    bad = runs["bad-tags"].changes
    assert bad.count() == 40
    assert bad.filter(status=Change.Status.QUEUED).count() > 20  # the rules let most of it through
    assert not runs["refunds"].changes.exclude(status=Change.Status.PENDING_REVIEW).exists()
    # Running it again with --if-first posts nothing.
    call_command("demo_agent", url=live_server.url, if_first=True)
    assert Run.objects.count() == 4
