"""A group of alike changes in the queue: its example reads as the change's own card does."""

from __future__ import annotations

from demo.models import Ticket
from tests.factories import make_tickets, propose_waiting


def resolve(api, ticket, operation_id):
    body = {"record_type": "ticket", "records": [{"id": ticket.pk, "expected": {"status": "open"}}]}
    return propose_waiting(api, ticket, operation_id, values={"status": "resolved"}, **body)


def test_the_example_says_when_its_record_moved_since_the_agent_looked(client, support, api):
    first, second = make_tickets(2)
    resolve(api, first, "resolve-1")
    resolve(api, second, "resolve-2")
    Ticket.objects.filter(pk=first.pk).update(status="resolved")  # a person resolved it meanwhile
    client.force_login(support)
    page = client.get("/review/").content.decode()
    assert "2 changes from run r-1 set the status of tickets to resolved" in page
    assert f"For example: Change the status of ticket #{first.pk}" in page
    assert "from resolved to resolved" in page  # true: that is the record now …
    # … and the example says why, as the change's card would.
    assert "its status is now resolved; the agent saw open" in page
