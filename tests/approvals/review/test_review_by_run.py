"""The review queue narrowed to one run, and the run page's way there."""

from __future__ import annotations

import re

import pytest

from approvals.models import Change, Run
from tests.factories import make_tickets, ticket_change


def ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<article class="card change[^"]*" id="change-(\d+)"', page)]


@pytest.fixture
def two_runs(api, workflow):
    """Run r-1: three waiting changes and one auto-applied; run r-2: two waiting changes."""
    tickets = make_tickets(6)
    for run, chunk in (("r-1", tickets[:4]), ("r-2", tickets[4:])):
        changes = [
            {**ticket_change(t, f"{run}-{t.pk}", risk=0.8 if i < 3 else 0.1), "values": {"tags": f"t{t.pk}"}}
            for i, t in enumerate(chunk)
        ]
        assert (
            api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": run, "changes": changes}).status_code
            == 201
        )
    return Run.objects.get(external_id="r-1"), Run.objects.get(external_id="r-2")


def test_the_queue_filters_by_run(client, support, two_runs):
    first, second = two_runs
    client.force_login(support)
    response = client.get(f"/review/?run={first.pk}")
    page = response.content.decode()
    assert response.status_code == 200
    waiting = Change.objects.filter(run=first, status=Change.Status.PENDING_REVIEW)
    assert sorted(ids_on(page)) == sorted(waiting.values_list("pk", flat=True)) and len(waiting) == 3
    assert "<strong>3</strong> waiting match these filters" in page
    assert "run r-1" in page and f'href="/runs/{first.pk}/"' in page
    # The run filter is kept when the other filters change.
    assert f'<input type="hidden" name="run" value="{first.pk}"' in page


@pytest.mark.parametrize("value", ["abc", "-1", "99999999999999999999", "1.5"])
def test_a_bad_run_is_a_plain_message(client, support, two_runs, value):
    client.force_login(support)
    response = client.get(f"/review/?run={value}")
    assert response.status_code == 422
    page = response.content.decode()
    assert "Not a run number" in page
    assert "group needs its run" not in page


def test_a_run_that_does_not_exist_says_so(client, support, two_runs):
    client.force_login(support)
    response = client.get("/review/?run=987654")
    assert response.status_code == 422
    assert "There is no run 987654" in response.content.decode()


def test_the_run_page_links_to_its_changes_waiting_for_review(client, support, two_runs):
    first, _ = two_runs
    client.force_login(support)
    page = client.get(f"/runs/{first.pk}/").content.decode()
    assert f'<a href="/review/?run={first.pk}">3 waiting for review</a>' in page
