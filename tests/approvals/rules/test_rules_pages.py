"""The rules pages: who may read and edit, the condition builder with and without htmx, errors, versions."""

from __future__ import annotations

import pytest

from approvals.models import Event, RuleSet
from tests.factories import make_rule

RULES = "/workflows/ticket-triage/rules/"


def login(client, user):
    client.force_login(user)
    return client


def editor_post(**fields):
    """A full rule-editor form, as a browser sends it: one row, risk ≥ 0.7 → owner group reviews, 2 approvals."""
    data = {
        "base_version": "1",
        "rows": "1",
        "groups": "0",
        "name": "risky",
        "enabled": "on",
        "match": "all",
        "row-0-field": "risk",
        "row-0-op": "gte",
        "row-0-value": "0.7",
        "decision": "review",
        "group": "",
        "approvals": "2",
        "action": "save",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


# Who may see and edit ------------------------------------------------------------------------------


def test_it_shows_the_rules_read_back_in_plain_words(client, reviewer, workflow):
    response = login(client, reviewer).get(RULES)
    assert response.status_code == 200
    assert "When risk &lt; 0.5 → auto-apply" in response.content.decode()
    assert "Add a rule" not in response.content.decode()  # reviewers read, they do not edit


def test_the_dashboard_links_to_each_workflows_rules(client, operator, workflow):
    assert RULES in login(client, operator).get("/").content.decode()


def test_an_outsider_gets_404(client, outsider, workflow):
    login(client, outsider)
    assert client.get(RULES).status_code == 404
    assert client.get("/rules/defaults/").status_code == 404
    assert client.post(RULES + "new", editor_post()).status_code == 404


def test_a_reviewer_may_not_edit(client, reviewer, finance, workflow):
    for user in (reviewer, finance):
        login(client, user)
        assert client.get(RULES + "new").status_code == 403
        assert client.post(RULES + "new", editor_post()).status_code == 403
        rule_id = workflow.rule_sets.get().rules[0]["id"]
        assert client.post(f"{RULES}{rule_id}/toggle", {"base_version": "1"}).status_code == 403
        assert client.post(f"{RULES}{rule_id}/delete", {"base_version": "1"}).status_code == 403
    assert RuleSet.objects.count() == 1


def test_an_anonymous_visitor_is_sent_to_log_in(client, workflow):
    assert client.get(RULES).status_code == 302


def test_an_unknown_workflow_or_rule_is_404(client, operator, workflow):
    login(client, operator)
    assert client.get("/workflows/nope/rules/").status_code == 404
    assert client.get(RULES + "deadbeef/edit").status_code == 404
    assert client.get(RULES + "versions/9/").status_code == 404


def test_wrong_methods_are_405(client, operator, workflow):
    login(client, operator)
    rule_id = workflow.rule_sets.get().rules[0]["id"]
    assert client.post(RULES).status_code == 405
    assert client.get(f"{RULES}{rule_id}/toggle").status_code == 405


# Editing -----------------------------------------------------------------------------------------


def test_an_operator_adds_a_rule_and_a_version_is_saved_with_its_event(client, operator, workflow, finance):
    response = login(client, operator).post(RULES + "new", editor_post(group="finance"))
    assert response.status_code == 302 and response["Location"] == RULES
    saved = RuleSet.objects.get(workflow=workflow, version=2)
    assert saved.created_by == operator
    assert [r["name"] for r in saved.rules] == ["below the review threshold", "risky"]
    assert saved.rules[1]["outcome"] == {"decision": "review", "group": "finance", "approvals": 2}
    event = Event.objects.get(kind=Event.Kind.RULES_CHANGED)
    assert event.actor == operator and event.workflow == workflow
    assert event.message == (
        "otto changed the rules of ticket-triage (version 2): "
        "added rule 'risky' (When risk ≥ 0.7 → finance reviews, 2 approvals). "
        "Next: new proposals are routed by version 2; changes already routed keep their route."
    )
    page = client.get(RULES).content.decode()
    assert "When risk ≥ 0.7 → finance reviews, 2 approvals" in page
    assert "added rule &#x27;risky&#x27;" in page  # the versions table


def test_an_admin_may_edit_too(client, admin_user, workflow):
    response = login(client, admin_user).post(RULES + "new", editor_post())
    assert response.status_code == 302
    assert RuleSet.objects.get(version=2).rules[1]["outcome"]["group"] == ""


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"row-0-field": "priority"}, "Select a valid choice"),
        ({"row-0-op": "contains"}, "“contains” does not fit risk, which is a number"),
        ({"row-0-value": "high"}, "&#x27;high&#x27; is not a number"),
        ({"row-0-field": "attr.customer_tier", "row-0-op": "in", "row-0-value": "gold"}, "&#x27;gold&#x27; is not"),
        ({"name": ""}, "This field is required"),
        ({"name": "Below the review threshold"}, "Another rule is already called that"),
        ({"approvals": "9"}, "less than or equal to 5"),
        ({"group": "auditors"}, "Select a valid choice"),
    ],
)
def test_an_invalid_rule_is_not_saved_and_says_why(client, operator, workflow, finance, fields, error):
    response = login(client, operator).post(RULES + "new", editor_post(**fields))
    assert response.status_code == 422
    assert error in response.content.decode()
    assert RuleSet.objects.count() == 1
    assert not Event.objects.filter(kind=Event.Kind.RULES_CHANGED).exists()


def test_an_invalid_rule_with_htmx_answers_the_editor_fragment_with_422(client, operator, workflow):
    response = login(client, operator).post(RULES + "new", editor_post(**{"row-0-value": "x"}), HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="rule-editor"') and "<html" not in body
    assert response["HX-Retarget"] == "#rule-editor"


def test_the_builder_adds_and_removes_rows_and_groups_without_javascript(client, operator, workflow):
    login(client, operator)
    response = client.post(RULES + "new", editor_post(action="add_row"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="row-1-field"' in body and 'name="rows" value="2"' in body and "<html" in body
    response = client.post(RULES + "new", editor_post(action="add_group"))
    body = response.content.decode()
    assert 'name="row-1-group" value="0"' in body and 'name="group-0-match"' in body
    # Remove row 0: the group's row moves up to index 0.
    data = editor_post(
        action="remove_row:0",
        rows="2",
        groups="1",
        **{"row-1-field": "confidence", "row-1-op": "lt", "row-1-value": "0.6", "row-1-group": "0"},
        **{"group-0-match": "any"},
    )
    body = client.post(RULES + "new", data).content.decode()
    assert 'name="row-0-group" value="0"' in body and 'name="rows" value="1"' in body
    assert RuleSet.objects.count() == 1  # builder buttons never save


def test_the_builder_answers_htmx_with_the_editor_fragment(client, operator, workflow):
    response = login(client, operator).post(RULES + "new", editor_post(action="add_row"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<form id="rule-editor"') and 'name="row-1-field"' in body
    assert 'hx-post="/workflows/ticket-triage/rules/new"' in body


def test_a_rule_with_a_group_is_saved_and_read_back(client, operator, workflow):
    data = editor_post(
        name="big or unsure refunds",
        rows="3",
        groups="1",
        **{"row-0-field": "record_type", "row-0-op": "is", "row-0-value": "refund"},
        **{"row-1-field": "value.amount", "row-1-op": "gt", "row-1-value": "100", "row-1-group": "0"},
        **{"row-2-field": "confidence", "row-2-op": "lt", "row-2-value": "0.6", "row-2-group": "0"},
        **{"group-0-match": "any", "group": "", "approvals": "1"},
    )
    assert login(client, operator).post(RULES + "new", data).status_code == 302
    rule = RuleSet.objects.get(version=2).rules[1]
    assert rule["condition"] == {
        "match": "all",
        "rows": [
            {"field": "record_type", "op": "is", "value": "refund"},
            {
                "match": "any",
                "rows": [
                    {"field": "value.amount", "op": "gt", "value": 100},
                    {"field": "confidence", "op": "lt", "value": 0.6},
                ],
            },
        ],
    }
    assert (
        "When record type is refund and (amount &gt; 100 or confidence &lt; 0.6) → "
        "the record type&#x27;s owner group reviews, 1 approval"
    ) in client.get(RULES).content.decode()


def test_an_empty_group_is_refused(client, operator, workflow):
    data = editor_post(groups="1", **{"group-0-match": "any"})
    response = login(client, operator).post(RULES + "new", data)
    assert response.status_code == 422
    assert "An empty group" in response.content.decode()


def test_editing_a_rule_keeps_its_id_and_the_event_says_what_changed(client, operator, workflow):
    rule_id = workflow.rule_sets.get().rules[0]["id"]
    login(client, operator)
    page = client.get(f"{RULES}{rule_id}/edit").content.decode()
    assert 'value="below the review threshold"' in page and 'value="0.5"' in page
    data = editor_post(
        name="below the review threshold", decision="auto_apply", **{"row-0-op": "lt", "row-0-value": "0.3"}
    )
    assert client.post(f"{RULES}{rule_id}/edit", data).status_code == 302
    saved = RuleSet.objects.get(version=2)
    assert [r["id"] for r in saved.rules] == [rule_id]
    assert saved.summary == ("changed the condition of 'below the review threshold' from “risk < 0.5” to “risk < 0.3”")


def test_saving_unchanged_rules_saves_no_version(client, operator, workflow):
    rule_id = workflow.rule_sets.get().rules[0]["id"]
    data = editor_post(
        name="below the review threshold", decision="auto_apply", **{"row-0-op": "lt", "row-0-value": "0.5"}
    )
    assert login(client, operator).post(f"{RULES}{rule_id}/edit", data).status_code == 302
    assert RuleSet.objects.count() == 1
    assert not Event.objects.filter(kind=Event.Kind.RULES_CHANGED).exists()


def test_a_stale_editor_does_not_overwrite_a_newer_version(client, operator, workflow):
    RuleSet.objects.create(workflow=workflow, version=2, rules=[])
    response = login(client, operator).post(RULES + "new", editor_post(base_version="1"))
    assert response.status_code == 422
    assert "saved version 2 of these rules while you were editing" in response.content.decode()
    assert RuleSet.objects.count() == 2


def test_turning_off_moving_and_deleting_make_versions(client, operator, workflow):
    RuleSet.objects.create(
        workflow=workflow, version=2, rules=[make_rule("a", [], "auto_apply"), make_rule("b", [], "refuse")]
    )
    a, b = (r["id"] for r in RuleSet.objects.get(version=2).rules)
    login(client, operator)
    client.post(f"{RULES}{b}/toggle", {"base_version": "2"})
    client.post(f"{RULES}{b}/move", {"base_version": "3", "by": "up"})
    assert "Delete rule “a”" in client.get(f"{RULES}{a}/delete").content.decode()
    client.post(f"{RULES}{a}/delete", {"base_version": "4"})
    summaries = list(RuleSet.objects.filter(version__gt=2).order_by("version").values_list("summary", flat=True))
    assert summaries == ["turned off 'b'", "reordered the rules: 'b', 'a'", "removed rule 'a'"]
    assert Event.objects.filter(kind=Event.Kind.RULES_CHANGED).count() == 3
    # A stale button (version 4 is no longer current) changes nothing.
    client.post(f"{RULES}{b}/toggle", {"base_version": "4"})
    assert RuleSet.objects.count() == 5


def test_old_versions_are_viewable_and_restorable(client, operator, workflow):
    login(client, operator)
    client.post(RULES + "new", editor_post())
    page = client.get(RULES + "versions/1/").content.decode()
    assert "When risk &lt; 0.5 → auto-apply" in page and "<strong>risky</strong>" not in page
    assert client.post(RULES + "versions/1/restore", {"base_version": "2"}).status_code == 302
    assert RuleSet.objects.get(version=3).summary == "removed rule 'risky'"


def test_the_global_defaults_have_the_same_pages(client, operator, reviewer, workflow):
    login(client, operator)
    assert client.get("/rules/defaults/").status_code == 200
    response = client.post("/rules/defaults/new", editor_post(base_version="0"))
    assert response.status_code == 302 and response["Location"] == "/rules/defaults/"
    saved = RuleSet.objects.get(workflow=None)
    assert saved.version == 1 and saved.rules[0]["name"] == "risky"
    assert Event.objects.get(kind=Event.Kind.RULES_CHANGED).message.startswith("otto changed the global default rules")
    assert "risky" in login(client, reviewer).get("/rules/defaults/versions/1/").content.decode()


def test_agent_text_is_escaped(client, operator, workflow):
    data = editor_post(name="<script>alert(1)</script>", **{"row-0-field": "agent", "row-0-op": "is"})
    data["row-0-value"] = "<b>bot</b>"
    login(client, operator).post(RULES + "new", data)
    page = client.get(RULES).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>bot</b>" not in page


def test_versions_beyond_the_latest_30_are_still_linked(client, reviewer, workflow):
    for version in range(2, 33):
        RuleSet.objects.create(workflow=workflow, version=version, rules=[])
    page = login(client, reviewer).get(RULES).content.decode()
    assert 'href="/workflows/ticket-triage/rules/versions/32/"' in page
    assert "Older versions:" in page and 'href="/workflows/ticket-triage/rules/versions/1/">v1</a>' in page
