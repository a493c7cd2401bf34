"""The banner on every page while anything is paused: what, by whom, since when, why, and a link."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.lifecycle import Actor
from approvals.workflows.context_processors import paused_banner
from approvals.workflows.services import pause_workflow, resume_workflow
from tests.factories import make_workflow


def banner(html: str) -> str:
    start = html.find('<aside class="paused-banner"')
    return html[start : html.find("</aside>", start)] if start >= 0 else ""


def test_every_page_says_what_is_paused(client, operator, support, workflow):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="tags look <b>wrong</b>.")
    at = timezone.localtime(workflow.paused_at).strftime("%H:%M")
    client.force_login(support)
    for url in ("/", "/review/", "/undos/", "/workflows/ticket-triage/rules/"):
        text = banner(client.get(url).content.decode())
        assert f"<strong>Paused: ticket-triage</strong>, by otto since {at} (0" in text, url
        assert "minutes ago): tags look &lt;b&gt;wrong&lt;/b&gt;. " in text  # escaped, one full stop
        assert '<a href="/workflows/ticket-triage/">Open its page</a>' in text
    client.force_login(operator)
    assert '<a href="/workflows/ticket-triage/">Open to resume</a>' in banner(client.get("/").content.decode())


def test_a_pause_of_another_day_gives_the_date(client, operator):
    earlier = timezone.now() - timedelta(days=2)
    make_workflow("refund-bot", state="paused", paused_at=earlier, paused_by_label="maya", pause_reason="refunds")
    client.force_login(operator)
    text = banner(client.get("/").content.decode())
    assert f"by maya since {timezone.localtime(earlier):%Y-%m-%d %H:%M} (2" in text


def test_many_paused_workflows_are_summed_up(client, operator):
    for i in range(5):
        make_workflow(f"bot-{i}", state="paused", paused_at=timezone.now(), paused_by_label="maya")
    client.force_login(operator)
    text = banner(client.get("/").content.decode())
    assert text.count("<strong>Paused:") == 3
    assert "And 2 more paused workflows" in text


def test_no_banner_when_nothing_is_paused_and_after_resuming(client, operator, workflow):
    client.force_login(operator)
    assert banner(client.get("/").content.decode()) == ""
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="x")
    assert banner(client.get("/").content.decode())
    resume_workflow(workflow=workflow, actor=Actor.person(operator))
    assert banner(client.get("/").content.decode()) == ""


def test_it_costs_one_query_and_none_for_visitors(rf: RequestFactory, operator, outsider, workflow):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="x")
    request = rf.get("/login/")
    request.user = AnonymousUser()
    with CaptureQueriesContext(connection) as queries:
        assert paused_banner(request)["paused_banner"].lines == []
    assert len(queries) == 0
    request.user = outsider
    assert paused_banner(request)["paused_banner"].lines == []
    request.user = operator
    operator._countersign_groups = frozenset({"operators"})
    with CaptureQueriesContext(connection) as queries:
        found = paused_banner(request)["paused_banner"]
        assert [line.name for line in found.lines] == ["ticket-triage"] and found.more == 0
    assert len(queries) == 1


def test_the_login_page_shows_no_banner(client, operator, workflow):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="x")
    assert banner(client.get("/login/").content.decode()) == ""
