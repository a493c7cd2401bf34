"""A rule that does not check is refused with a clear message: unknown field, wrong value, misfit operator."""

from __future__ import annotations

import pytest

from approvals.rules.conditions import InvalidRow, clean_row
from approvals.rules.ruleset import InvalidRule, clean_rule, clean_rules
from tests.factories import make_rule


def row(field, op, value):
    return {"field": field, "op": op, "value": value}


@pytest.mark.parametrize(
    "bad, part, message",
    [
        (row("priority", "gt", 1), "field", "Unknown field 'priority'"),
        (row("risk", "between", 1), "op", "Unknown operator 'between'"),
        (
            row("risk", "contains", "0.7"),
            "op",
            "“contains” does not fit risk, which is a number: use “=”, “≠”, “<”, “≤”, “>” or “≥”.",
        ),
        (row("record_type", "gt", "3"), "op", "“>” does not fit record type, which is text"),
        (row("fields", "is", "tags"), "op", "does not fit changed fields, which is a set of field names"),
        (row("risk", "gte", "high"), "value", "risk is a number from 0 to 1; 'high' is not a number."),
        (row("risk", "gte", 1.5), "value", "1.5 is out of range"),
        (row("risk", "gte", True), "value", "risk is a number"),
        (row("risk", "gte", "nan"), "value", "not a finite number"),
        (row("hour", "lt", 6.5), "value", "hour of day is a whole number from 0 to 23; '6.5' is not a whole number."),
        (row("value.amount", "gt", ""), "value", "amount is a number"),
        (row("attr.customer_tier", "in", "gold, vip"), "value", "customer tier is one of standard, vip, enterprise"),
        (row("attr.customer_tier", "in", " , "), "value", "Give at least one value"),
        (row("record_type", "is", "spaceship"), "value", "'spaceship' is not"),
        (row("agent", "is", "  "), "value", "Give a value for agent"),
        (row("fields", "any_of", "tags, colour"), "value", "'colour' is not"),
    ],
)
def test_a_bad_row_is_refused_with_a_clear_message(bad, part, message):
    with pytest.raises(InvalidRow) as exc:
        clean_row(bad)
    assert exc.value.part == part
    assert message in str(exc.value)


def test_rows_are_normalised():
    assert clean_row(row("risk", "gte", " 0.70 ")) == row("risk", "gte", 0.7)
    assert clean_row(row("value.amount", "gt", "100")) == row("value.amount", "gt", 100)
    assert clean_row(row("attr.customer_tier", "in", "vip, enterprise, vip")) == row(
        "attr.customer_tier", "in", ["vip", "enterprise"]
    )


def test_a_rule_reports_every_problem_by_place():
    rule = make_rule("", [row("risk", "gte", "x"), {"match": "any", "rows": [row("nope", "is", "a")]}], "review")
    rule["outcome"]["approvals"] = 9
    with pytest.raises(InvalidRule) as exc:
        clean_rule(rule, groups={"finance"})
    assert set(exc.value.errors) == {"name", "rows.0.value", "rows.1.rows.0.field", "approvals"}


def test_groups_nest_one_level_only_and_are_not_empty():
    deep = {"match": "any", "rows": [{"match": "all", "rows": [row("risk", "gt", 0.1)]}]}
    with pytest.raises(InvalidRule) as exc:
        clean_rule(make_rule("deep", [deep]))
    assert exc.value.errors == {"rows.0.rows.0": "Groups nest one level deep only."}
    with pytest.raises(InvalidRule) as exc:
        clean_rule(make_rule("empty", [{"match": "any", "rows": []}]))
    assert "empty group" in exc.value.errors["rows.0"]


def test_a_review_names_an_existing_group_and_1_to_5_approvals():
    with pytest.raises(InvalidRule) as exc:
        clean_rule(make_rule("x", [], "review", group="auditors"), groups={"finance", "support"})
    assert exc.value.errors == {"group": "There is no group named 'auditors'."}
    for approvals in (0, 6, "2", True):
        with pytest.raises(InvalidRule):
            clean_rule(make_rule("x", [], "review", approvals=approvals))
    with pytest.raises(InvalidRule) as exc:
        clean_rule({"name": "x", "outcome": {"decision": "delete everything"}})
    assert exc.value.errors == {"decision": "Choose auto-apply, review or refuse."}


def test_an_auto_apply_or_refuse_outcome_has_no_reviewers():
    rule = clean_rule({"name": "x", "outcome": {"decision": "refuse", "group": "finance", "approvals": 3}})
    assert rule["outcome"] == {"decision": "refuse", "group": "", "approvals": 0}


def test_rule_names_are_unique_in_a_rule_set():
    with pytest.raises(InvalidRule) as exc:
        clean_rules([make_rule("Big refunds", []), make_rule("big  refunds", [], id="abcdef12")])
    assert "already called" in str(exc.value)


def test_an_id_that_is_not_ours_is_replaced():
    rule = clean_rule({**make_rule("x", []), "id": "<script>"})
    assert len(rule["id"]) == 8 and rule["id"] != "<script>"
