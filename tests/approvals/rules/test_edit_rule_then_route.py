"""End to end: an operator edits a rule in the browser pages; the next proposal, posted through the
agent API, is routed by it, says so, and the review page shows why."""

from __future__ import annotations

from approvals.models import Change, Event


def test_an_edited_rule_routes_the_next_proposal(client, api, operator, reviewer, ticket, workflow):
    client.force_login(operator)
    # The rules page links to the editor; the editor opens on the current version.
    page = client.get("/workflows/ticket-triage/rules/").content.decode()
    assert 'href="/workflows/ticket-triage/rules/new"' in page
    form = client.get("/workflows/ticket-triage/rules/new").content.decode()
    assert 'name="base_version" value="1"' in form

    # Without JavaScript: add a second condition row, then fill both and save.
    fields = {
        "base_version": "1",
        "groups": "0",
        "name": "billing tags need finance",
        "enabled": "on",
        "match": "all",
        "decision": "review",
        "group": "",
        "approvals": "2",
        "rows": "1",
        "row-0-field": "value.tags",
        "row-0-op": "contains",
        "row-0-value": "billing",
    }
    grown = client.post("/workflows/ticket-triage/rules/new", {**fields, "action": "add_row"}).content.decode()
    assert 'name="row-1-field"' in grown
    fields |= {"rows": "2", "row-1-field": "record_type", "row-1-op": "is", "row-1-value": "ticket"}
    saved = client.post("/workflows/ticket-triage/rules/new", {**fields, "action": "save"})
    assert saved.status_code == 302
    assert "billing tags need finance" in Event.objects.get(kind=Event.Kind.RULES_CHANGED).message

    # The agent's next proposal (low risk: version 1 alone would auto-apply it) is held by the new rule.
    response = api.post(
        "/api/v1/changes",
        {
            "workflow": "ticket-triage",
            "run": "r-2",
            "operation_id": "tag-billing",
            "record_type": "ticket",
            "records": [{"id": ticket.pk, "expected": {"tags": ""}}],
            "values": {"tags": "billing"},
            "risk": 0.1,
            "confidence": 0.95,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["review_group"], body["approvals_required"]) == ("pending_review", "support", 2)
    assert body["rule_set_version"] == 2
    assert body["explanation"] == (
        "Held for support review, 2 approvals: tags “billing” contains “billing”; record type ticket "
        "(rule 'billing tags need finance'). Overruled: 'below the review threshold' (auto-apply)."
    )
    assert [m["rule"] for m in body["matched_rules"]] == ["below the review threshold", "billing tags need finance"]

    # The review page shows the same reasons, and links to the version that decided.
    client.force_login(reviewer)
    review = client.get("/review/").content.decode()
    assert (
        "tags “billing” contains “billing”; record type ticket (rule &#x27;billing tags need finance&#x27;)" in review
    )
    assert 'href="/workflows/ticket-triage/rules/versions/2/"' in review
    change = Change.objects.get(operation_id="tag-billing")
    detail = client.get(f"/changes/{change.pk}/").content.decode()
    assert "Rules that matched" in detail and "<strong>decided</strong>" in detail


def test_turning_a_rule_off_changes_the_next_decision(client, api, operator, ticket, workflow):
    rule_id = workflow.rule_sets.get().rules[0]["id"]
    client.force_login(operator)
    client.post(f"/workflows/ticket-triage/rules/{rule_id}/toggle", {"base_version": "1"})
    body = {
        "workflow": "ticket-triage",
        "run": "r-3",
        "operation_id": "tag-1",
        "record_type": "ticket",
        "records": [{"id": ticket.pk, "expected": {"tags": ""}}],
        "values": {"tags": "billing"},
        "risk": 0.1,
        "confidence": 0.9,
    }
    # With its only auto-apply rule off, the workflow sends everything to review.
    assert api.post("/api/v1/changes", body).json()["explanation"] == (
        "Held for support review: no rule matched, so a person decides."
    )
