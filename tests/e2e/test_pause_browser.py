"""End to end, in a real browser: an operator pauses a workflow from the dashboard in one click
(a reason, then Pause); the banner says so on the review queue and on a run's page; the workflow's
page lists what the pause held; resuming there routes it again and a real Celery worker applies
it; the banner is gone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals.models import Change, Event
from demo.models import Ticket
from tests.conftest import wait_until
from tests.factories import make_agent, make_tickets
from tests.undo.conftest import propose_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
S = Change.Status


def test_an_operator_pauses_from_the_dashboard_and_resumes(
    page: Page, live_server, celery_worker_process, workflow, operator, screenshot
):
    agent = make_agent(workflow)[0]
    tickets = make_tickets(3)
    # Queued, not yet handed to a worker: the pause holds them.
    run, changes = propose_run(
        agent, workflow, "r-7", [(t, {"tags": "billing"}) for t in tickets], decision=Change.Decision.AUTO_APPLY
    )
    assert {c.status for c in changes} == {S.QUEUED}

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "otto")
    page.fill("#id_password", "pw-otto")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Workflows")
    expect(page.locator(".paused-banner")).to_have_count(0)

    # One click: the reason, then Pause, in the workflow's row.
    row = page.locator("#workflow-ticket-triage")
    row.get_by_label("Why pause ticket-triage").fill("tags look wrong")
    row.get_by_role("button", name="Pause ticket-triage").click()
    expect(page.locator(".messages")).to_contain_text("Paused ticket-triage: 3 queued changes held.")
    expect(page.locator("h1")).to_have_text("Workflows")  # back on the dashboard
    expect(row.locator(".badge")).to_have_text("paused")
    banner = page.locator(".paused-banner")
    expect(banner).to_contain_text("Paused: ticket-triage, by otto since")
    expect(banner).to_contain_text("tags look wrong. Open to resume")
    screenshot("pause-dashboard", full_page=True)
    assert set(Change.objects.filter(run=run).values_list("status", flat=True)) == {S.HELD}

    for path in ("/review/", f"/runs/{run.pk}/"):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator(".paused-banner")).to_contain_text("Paused: ticket-triage, by otto")
    expect(page.locator("#runbook")).to_contain_text("If this run goes wrong: nobody pauses it")
    screenshot("pause-run-page", full_page=True)

    # The banner leads to the workflow's page, which lists what the pause held.
    page.locator(".paused-banner").get_by_role("link", name="Open to resume").click()
    expect(page.locator(".state-words")).to_have_text("Paused")
    expect(page.locator("#pause-moment")).to_contain_text("Still waiting (3)")
    expect(page.locator("#held")).to_contain_text("3 changes")
    screenshot("pause-workflow-page", full_page=True)
    page.locator("#state").get_by_role("button", name="Resume").click()
    expect(page.locator(".messages")).to_contain_text("Resumed ticket-triage. 3 held changes routed again: 3 queued.")
    expect(page.locator(".state-words")).to_have_text("Running")
    expect(page.locator(".paused-banner")).to_have_count(0)

    def applied():
        """the resumed changes applied by the worker process"""
        return Change.objects.filter(run=run, status=S.APPLIED).count() == 3

    wait_until(applied, timeout=45)
    assert Ticket.objects.filter(pk__in=[t.pk for t in tickets], tags="billing").count() == 3
    page.reload()
    expect(page.locator("#resumed")).to_contain_text("3 queued for the workers")
    expect(page.locator("#pause-moment")).to_contain_text("Already ran (3)")
    assert Event.objects.filter(kind__in=[Event.Kind.PAUSED, Event.Kind.RESUMED], actor=operator).count() == 2
