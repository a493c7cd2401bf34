"""No page fails on a stored value: hostile text written straight to the database (bypassing
intake, as an older version or a raw write could) is shown escaped, and every page answers."""

from __future__ import annotations

import pytest

from approvals.models import Change, Event, Run
from tests.factories import make_customer, make_ticket

SCRIPT = "<script>alert(1)</script>"
# What the database can hold: SQLite keeps a lone surrogate only inside JSON (as the \ud800
# escape json.dumps writes); text columns take NUL, overrides and anything long.
IN_JSON = f"x\ud800y \udfff {SCRIPT} a\x00b \u202eevil\u202c"
IN_TEXT = f"{SCRIPT} a\x00b \u202eevil\u202c " + "long " * 2000


@pytest.fixture
def hostile(agent, workflow):
    customer = make_customer(name=f"{SCRIPT} Northwind\u202e")
    ticket = make_ticket(customer, subject=IN_TEXT[:300], tags=SCRIPT, internal_note=IN_TEXT)
    run = Run.objects.create(workflow=workflow, agent=agent, external_id=f"run {SCRIPT}\u202e\x00")
    changes = []
    for i, status in enumerate(["pending_review", "pending_review", "applied", "conflict"]):
        changes.append(
            Change.objects.create(
                run=run,
                workflow=workflow,
                agent=agent,
                operation_id=f"op-{i} {SCRIPT}\u202e\x00",
                body_hash="x",
                record_type="ticket",
                record_ids=[ticket.pk],
                values={"tags": IN_JSON},
                expected={str(ticket.pk): {"tags": IN_JSON}},
                risk=0.9,
                confidence=0.5,
                reasoning=IN_TEXT,
                status=status,
                decision="review",
                review_group="support",
                decision_explanation=IN_TEXT,
                matched_rules=[
                    {
                        "rule": IN_JSON,
                        "scope": "workflow",
                        "outcome": "review",
                        "outcome_text": IN_JSON,
                        "reasons": [
                            {"field": "value.tags", "op": "eq", "expected": IN_JSON, "actual": IN_JSON, "text": IN_JSON}
                        ],
                        "decided": True,
                    }
                ],
                last_error=IN_TEXT,
                reject_reason=IN_TEXT,
                edited_values={"tags": IN_JSON} if i == 1 else None,
            )
        )
    for change in changes:
        Event.objects.create(
            kind=Event.Kind.APPROVED,
            workflow=workflow,
            run=run,
            change=change,
            actor_label=IN_TEXT[:200],
            message=IN_TEXT,
            details={"why": IN_JSON},
        )
    return ticket, run, changes


def pages(ticket, run, changes):
    yield "/review/"
    yield "/review/?workflow=ticket-triage"
    for change in changes:
        yield f"/changes/{change.pk}/"
    yield f"/runs/{run.pk}/"
    yield f"/records/ticket/{ticket.pk}/"
    yield f"/records/ticket/{ticket.pk}/changes/"
    yield "/"


def admin_pages(ticket, run, changes):
    yield "/admin/approvals/change/"
    for change in changes:
        yield f"/admin/approvals/change/{change.pk}/change/"
    yield "/admin/approvals/run/"
    yield f"/admin/approvals/run/{run.pk}/change/"
    yield "/admin/approvals/event/"
    yield f"/admin/approvals/event/{Event.objects.first().pk}/change/"
    yield f"/admin/demo/ticket/{ticket.pk}/change/"
    yield "/admin/demo/ticket/"


def assert_safe(response, url):
    assert response.status_code == 200, (url, response.status_code)
    content = response.content.decode("utf-8")  # encodable: no lone surrogate reached the page
    assert SCRIPT not in content, url
    return content


def test_pages_show_hostile_stored_values_escaped(client, support, hostile):
    ticket, run, changes = hostile
    client.force_login(support)
    shown = ""
    for url in pages(ticket, run, changes):
        shown += assert_safe(client.get(url, follow=True), url)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown


def test_admin_pages_show_hostile_stored_values_escaped(client, admin_user, hostile):
    ticket, run, changes = hostile
    client.force_login(admin_user)
    for url in admin_pages(ticket, run, changes):
        assert_safe(client.get(url), url)


def test_the_api_reads_a_hostile_stored_change(api, hostile):
    _, _, changes = hostile
    response = api.get(f"/api/v1/changes/{changes[0].pk}")
    assert response.status_code == 200
    response.content.decode("ascii")  # JSON escapes what it cannot spell
