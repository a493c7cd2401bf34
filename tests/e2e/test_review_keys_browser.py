"""Keyboard shortcuts in a real browser act only on the item visibly selected: with nothing
selected they do nothing, and letters typed into a field are text, never shortcuts."""

from __future__ import annotations

import pytest
from countersign_client import Client
from playwright.sync_api import Page, expect

from approvals.models import Change
from tests.factories import make_tickets, ticket_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
S = Change.Status


def _post(api: Client) -> dict:
    tickets = make_tickets(6)
    urgent = api.propose(workflow="ticket-triage", run="r-1", **ticket_change(tickets[0], "urgent", risk=0.95))
    api.propose_batch(
        workflow="ticket-triage",
        run="r-2",
        changes=[
            {
                **ticket_change(t, f"resolve-{t.pk}", risk=0.8),
                "records": [{"id": t.pk, "expected": {"status": "open"}}],
                "values": {"status": "resolved"},
            }
            for t in tickets[1:]
        ],
    )
    return urgent


def _log_in(page: Page, live_server) -> None:
    page.goto(f"{live_server.url}/review/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "pw-rita")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Review queue")


def _press(page: Page, key: str) -> None:
    """A key pressed as a person does, after a pause: keys in a quick burst are typing."""
    page.wait_for_timeout(400)
    page.keyboard.press(key)


def _nothing_decided(page: Page) -> None:
    page.wait_for_timeout(800)  # time for any request a key would have sent, and its swap
    assert set(Change.objects.values_list("status", flat=True)) == {S.PENDING_REVIEW}
    expect(page.locator(".notice")).to_have_count(0)


def test_after_a_group_is_replaced_by_its_confirmation_a_key_approves_nothing(
    page: Page, live_server, agent_and_token, reviewer
):
    _, token = agent_and_token
    urgent = _post(Client(live_server.url, token=token))
    _log_in(page, live_server)
    page.locator("h1").click()
    _press(page, "j")
    expect(page.locator(f"#change-{urgent['id']}")).to_have_class("card change current")
    _press(page, "j")
    expect(page.locator(".card.group")).to_have_class("card group current")
    _press(page, "r")
    expect(page.locator(".card.confirm h2")).to_have_text("Reject 5 changes?")
    expect(page.locator(".current")).to_have_count(0)  # nothing is selected any more
    _press(page, "Escape")
    _press(page, "a")
    _nothing_decided(page)


def test_with_nothing_selected_keys_do_nothing_and_typing_is_text(page: Page, live_server, agent_and_token, reviewer):
    _, token = agent_and_token
    urgent = _post(Client(live_server.url, token=token))
    _log_in(page, live_server)
    page.locator("h1").click()
    # Letters typed into a page with nothing selected, then Enter.
    for key in ("a", "r", "r", "e"):
        page.keyboard.press(key)
    page.keyboard.type("oops")
    page.keyboard.press("Enter")
    expect(page.locator(".card.confirm")).to_have_count(0)
    _nothing_decided(page)
    # Letters typed into a field stay in the field.
    reason = page.locator(f"#change-{urgent['id']} input[name=reason]")
    reason.click()
    page.keyboard.type("jar")
    expect(reason).to_have_value("jar")
    _nothing_decided(page)


def test_text_typed_into_the_page_with_nothing_focused_decides_nothing(
    page: Page, live_server, agent_and_token, reviewer
):
    # Found by trying it: "reject all spam ar" typed with no field focused selected the first card
    # with its "j" and approved it with the "a" of "all".
    _, token = agent_and_token
    _post(Client(live_server.url, token=token))
    _log_in(page, live_server)
    page.locator("h1").click()
    page.keyboard.type("reject all spam ar", delay=90)
    page.keyboard.press("Enter")
    _nothing_decided(page)
    expect(page.locator(".current")).to_have_count(0)
    # After the burst, a deliberate j then a still approves the selected card.
    _press(page, "j")
    _press(page, "j")
    _press(page, "k")
    expect(page.locator(".current")).to_have_count(1)
    _press(page, "a")
    expect(page.locator(".current .notice")).to_contain_text("Approved change")


def test_keys_after_opening_a_correction_go_into_its_fields(page: Page, live_server, agent_and_token, reviewer):
    # Found by trying it: j, e, then a submitted the correction form unchanged, "with your corrections".
    _, token = agent_and_token
    urgent = _post(Client(live_server.url, token=token))
    _log_in(page, live_server)
    page.locator("h1").click()
    _press(page, "j")
    _press(page, "e")
    form = page.locator(f"#change-{urgent['id']} form.edit")
    expect(form).to_have_count(1)
    first = form.locator("input:not([type=hidden]), textarea, select").first
    expect(first).to_be_focused()
    _press(page, "a")
    _nothing_decided(page)
