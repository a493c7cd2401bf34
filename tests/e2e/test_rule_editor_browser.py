"""The rule editor in a real browser (Debian's chromium): the htmx condition builder, the dry run, errors, saving."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect

from approvals.models import RuleSet

pytestmark = pytest.mark.e2e

# Playwright's sync API keeps an event loop in the test thread for the whole session, and Django then
# refuses ORM calls; they are plain synchronous calls, so allow them (for the rest of the run too).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # `playwright install` cannot download here: drive the system's chromium.
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium"}


def log_in(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"pw-{username}")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()


def test_an_operator_builds_tries_and_saves_a_rule(transactional_db, live_server, page: Page, operator, workflow):
    log_in(page, live_server, "otto")
    page.get_by_role("link", name="rules", exact=True).click()
    page.get_by_role("link", name="Add a rule").click()
    editor = page.locator("#rule-editor")

    # Picking a field redraws the row (htmx) with the operators that fit it.
    editor.locator("select[name=row-0-field]").select_option("risk")
    expect(editor.locator("select[name=row-0-op] option")).to_have_count(6)
    editor.locator("select[name=row-0-op]").select_option("gte")
    editor.locator("input[name=row-0-value]").fill("0.7")

    # "+ condition" swaps in a second row, keeping what was typed.
    editor.get_by_role("button", name="+ condition", exact=True).click()
    expect(editor.locator("select[name=row-1-field]")).to_be_visible()
    expect(editor.locator("input[name=row-0-value]")).to_have_value("0.7")
    editor.locator("select[name=row-1-field]").select_option("value.amount")
    expect(editor.locator("select[name=row-1-op] option")).to_have_count(6)  # the redraw has landed
    editor.locator("select[name=row-1-op]").select_option("gt")
    editor.locator("input[name=row-1-value]").fill("lots")
    editor.locator("select[name=match]").select_option("any")
    editor.locator("input[name=name]").fill("risky or big")
    editor.locator("select[name=decision]").select_option("review")
    editor.locator("input[name=approvals]").fill("2")

    # A bad value: the editor comes back (422, swapped) with the error, nothing saved.
    editor.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_text("'lots' is not a number")).to_be_visible()
    assert RuleSet.objects.count() == 1

    page.locator("input[name=row-1-value]").fill("100")
    page.get_by_role("button", name="Try on past proposals").click()
    expect(page.locator("#dry-run")).to_contain_text("No proposals in the last 30 days to replay.")

    page.get_by_role("button", name="Save as a new version").click()
    expect(page).to_have_url(re.compile(r"/workflows/ticket-triage/rules/$"))
    readback = "When risk ≥ 0.7 or amount > 100 → the record type's owner group reviews, 2 approvals"
    expect(page.locator(".readback", has_text=readback)).to_be_visible()
    assert RuleSet.objects.get(version=2).rules[1]["name"] == "risky or big"
