"""End to end, in a real browser: a record owner undoes a bad run from its page. The preview
lists what goes back and what stays; the owner forces one record and skips another; one
click hands the undo to a real Celery worker process while the run page's progress bar
follows it; the page then shows the run undone. Then the undo is itself undone (redo)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from approvals.models import Change
from demo.models import Ticket
from tests.conftest import ROOT
from tests.factories import make_agent, make_tickets
from tests.undo.conftest import apply_run, human_edit
from undo.models import Undo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
S = Change.Status


def test_an_owner_undoes_a_run_in_the_browser(
    page: Page, live_server, celery_worker_process, settings, support, workflow, screenshot
):
    settings.UNDO_INLINE_MAX_RECORDS = 10  # 40 records: a worker runs it, the page follows
    bot = make_agent(workflow, name="tagger", version="1.4")[0]
    tickets = make_tickets(40)
    run, _ = apply_run(bot, workflow, "r-spam", [(t, {"tags": "spam", "status": "closed"}) for t in tickets])
    human_edit(support, tickets[0], tags="spam, billing")  # sam fixed one by hand since
    forced, skipped = tickets[0], tickets[1]

    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "pw-sam")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Run r-spam")
    page.click("text=Undo this run…")

    # The preview: nothing written yet; what goes back, and what stays (sam's edit).
    expect(page.locator("h1")).to_contain_text("Undo run r-spam")
    expect(page.locator(".counts").first).to_contain_text("40 changes")
    conflict = page.locator(f"#conflict-ticket\\:{forced.pk}")
    expect(conflict).to_contain_text("since then sam set it to spam, billing")
    expect(conflict).to_contain_text("status stays at closed with change #")
    expect(page.locator(f"input[name=skip][value='ticket:{skipped.pk}']")).to_be_visible()
    screenshot("undo-preview", docs="undo-preview.png")
    conflict.locator("input[value=force]").check()
    page.locator(f"input[name=skip][value='ticket:{skipped.pk}']").check()
    page.click("button[type=submit].reject")

    # Back on the run page: the bar follows the worker, then the page shows the run undone.
    expect(page.locator(".progress")).to_be_visible()
    expect(page.locator(".counts").first).to_contain_text("undone 39", timeout=30_000)
    expect(page.locator(".progress .badge.done")).to_be_visible()
    made = Undo.objects.get()
    assert (made.status, made.records_reverted, made.forced_count, made.skipped_count) == ("done", 39, 1, 1)
    # The worker ran it, not the request.
    assert f"{{'undo': {made.pk}, 'status': 'done', 'records': 39}}" in (ROOT / "var" / "test-worker.log").read_text()
    states = dict(Ticket.objects.values_list("pk", "tags"))
    assert states[forced.pk] == "" and states[skipped.pk] == "spam"
    assert {states[t.pk] for t in tickets[2:]} == {""}
    assert Change.objects.filter(status=S.UNDONE).count() == 39

    # Undo the undo: its page offers it, with a preview, and a worker puts it all back.
    page.click(f"text=Undo #{made.pk}")
    page.click("text=Undo this undo (put back what it took back)…")
    expect(page.locator(".counts").first).to_contain_text("39 records")
    page.click("text=Put it back")
    expect(page.locator(".progress .badge.done")).to_be_visible(timeout=30_000)
    expect(page.locator("h1")).to_contain_text("Redo #")
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets[2:]]).values_list("tags", flat=True)) == {"spam"}
    assert Change.objects.filter(status=S.APPLIED).count() == 40
