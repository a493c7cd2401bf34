"""Long lists fold: a first screen of a run's changes and of the queue, the rest on demand
(plain links and <details>, no JavaScript needed)."""

from __future__ import annotations

import re

from approvals.models import Run
from tests.factories import make_tickets, ticket_change


def cards(page: str) -> int:
    return page.count('class="card change"')


def post_run(api, n: int, *, risk: float = 0.1, run: str = "r-big") -> Run:
    tickets = make_tickets(n)
    changes = [{**ticket_change(t, f"{run}-{t.pk}", risk=risk), "values": {"tags": f"t{t.pk}"}} for t in tickets]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": run, "changes": changes})
    assert response.status_code == 201, response.content
    return Run.objects.get(external_id=run)


def test_a_long_run_shows_a_first_screen_and_the_rest_on_demand(client, support, api):
    run = post_run(api, 30)
    client.force_login(support)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert cards(page) == 10
    assert "The first 10 of 30 changes." in page
    assert '<a href="?show=&amp;all=1">Show all 30 changes</a>' in page
    everything = client.get(f"/runs/{run.pk}/?show=&all=1").content.decode()
    assert cards(everything) == 30 and "Show all" not in everything
    # The counts answer first, whatever is shown.
    assert re.search(r'<span class="badge queued">queued</span></a> 30', page)


def test_the_whole_list_is_paged_and_keeps_its_filter(client, support, api):
    run = post_run(api, 60)
    client.force_login(support)
    first = client.get(f"/runs/{run.pk}/?show=waiting&all=1").content.decode()
    assert cards(first) == 50
    assert '<a href="?show=waiting&amp;all=1&amp;page=2">Next →</a>' in first
    assert cards(client.get(f"/runs/{run.pk}/?show=waiting&all=1&page=2").content.decode()) == 10


def test_a_change_to_many_records_folds_the_rest(client, support, api, workflow):
    tickets = make_tickets(8)
    body = {
        **ticket_change(tickets[0], "many", risk=0.9),
        "records": [{"id": t.pk, "expected": {"tags": ""}} for t in tickets],
    }
    assert api.post("/api/v1/changes", {"workflow": "ticket-triage", "run": "r-many", **body}).status_code == 201
    client.force_login(support)
    queue = client.get("/review/").content.decode()
    shown, folded = queue.split('<details class="more-records">')
    assert shown.count('<section class="record">') == 3
    assert "<summary>and 5 more records</summary>" in folded
    assert folded.split("</details>")[0].count('<section class="record">') == 5
    run = client.get(f"/runs/{Run.objects.get(external_id='r-many').pk}/").content.decode()
    assert "<summary>and 5 more records</summary>" in run
    assert "and 3 more</a>" in run  # record links: the first five, the rest on the change's page


def test_the_queue_shows_a_first_screen_and_pages_on(client, support, api):
    post_run(api, 30, risk=0.9, run="r-q")
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert cards(page) == 10
    assert "10 shown of 30." in page and 'rel="next"' in page
