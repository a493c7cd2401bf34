"""In a real browser, the run page of a 300-change run and a queue page stay about a screen
or two tall: counts and a first screen of changes, the rest on demand."""

from __future__ import annotations

import pytest
from countersign_client import Client
from playwright.sync_api import Page, expect

from approvals.models import Run
from tests.factories import make_tickets, ticket_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _post(api: Client, n: int, risk: float, run: str) -> None:
    tickets = make_tickets(n)
    for start in range(0, n, 100):
        api.propose_batch(
            workflow="ticket-triage",
            run=run,
            changes=[
                {**ticket_change(t, f"{run}-{t.pk}", risk=risk), "values": {"tags": f"tag-{t.pk}"}}
                for t in tickets[start : start + 100]
            ],
        )


def _height(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollHeight")


def test_a_300_change_run_and_a_queue_page_are_short(page: Page, live_server, agent_and_token, support):
    _, token = agent_and_token
    api = Client(live_server.url, token=token)
    _post(api, 300, 0.1, "r-300")
    _post(api, 40, 0.9, "r-review")
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "pw-sam")
    page.click("button[type=submit]")

    run = Run.objects.get(external_id="r-300")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.locator("p.more")).to_contain_text("The first 10 of 300 changes.")
    run_height = _height(page)
    page.screenshot(path="test-artifacts/run-long.png", full_page=True)
    # The rest, on demand, without JavaScript.
    page.click("text=Show all 300 changes")
    expect(page.locator(".card.change")).to_have_count(50)
    page.goto(f"{live_server.url}/review/")
    expect(page.locator("#queue .pager")).to_contain_text("10 shown of 40.")
    queue_height = _height(page)
    print(f"run page {run_height} px, queue page {queue_height} px")
    # Before: 12,761 px for the run (every change, 50 a page, in full) and 3,580 for 25 items of the queue.
    assert run_height <= 2200, run_height
    assert queue_height <= 3000, queue_height
