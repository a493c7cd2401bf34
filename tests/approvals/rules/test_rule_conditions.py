"""Conditions: every operator, missing facts, all/any and one level of nesting, read back in plain words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from approvals.rules.conditions import compile_condition, compile_row
from approvals.rules.wording import condition_text, reason, row_text


def row(field, op, value):
    return {"field": field, "op": op, "value": value}


def matches(r, facts) -> bool:
    return compile_row(r)(facts)


@pytest.mark.parametrize(
    "op, value, risk, expected",
    [
        ("eq", 0.5, 0.5, True),
        ("eq", 0.5, 0.6, False),
        ("ne", 0.5, 0.6, True),
        ("ne", 0.5, 0.5, False),
        ("lt", 0.5, 0.4, True),
        ("lt", 0.5, 0.5, False),
        ("lte", 0.5, 0.5, True),
        ("lte", 0.5, 0.51, False),
        ("gt", 0.5, 0.51, True),
        ("gt", 0.5, 0.5, False),
        ("gte", 0.7, 0.7, True),
        ("gte", 0.7, 0.69, False),
    ],
)
def test_number_operators(op, value, risk, expected):
    assert matches(row("risk", op, value), {"risk": risk}) is expected


@pytest.mark.parametrize(
    "op, value, record_type, expected",
    [
        ("is", "refund", "refund", True),
        ("is", "refund", "ticket", False),
        ("is_not", "refund", "ticket", True),
        ("is_not", "refund", "refund", False),
        ("in", ["refund", "invoice"], "invoice", True),
        ("in", ["refund", "invoice"], "ticket", False),
        ("not_in", ["refund", "invoice"], "ticket", True),
        ("not_in", ["refund", "invoice"], "refund", False),
    ],
)
def test_text_operators(op, value, record_type, expected):
    assert matches(row("record_type", op, value), {"record_type": record_type}) is expected


def test_contains_ignores_case():
    assert matches(row("agent", "contains", "Triage"), {"agent": "ticket-triage-bot"})
    assert not matches(row("agent", "contains", "refund"), {"agent": "ticket-triage-bot"})


@pytest.mark.parametrize(
    "op, value, touched, expected",
    [
        ("any_of", ["permission_level"], {"permission_level", "name"}, True),
        ("any_of", ["permission_level"], {"name"}, False),
        ("all_of", ["tags", "status"], {"tags", "status", "internal_note"}, True),
        ("all_of", ["tags", "status"], {"tags"}, False),
        ("only", ["tags", "internal_note"], {"tags"}, True),
        ("only", ["tags", "internal_note"], {"tags", "status"}, False),
        ("only", ["tags", "internal_note"], set(), False),  # a soft delete changes no field
        ("none_of", ["amount"], {"status"}, True),
        ("none_of", ["amount"], {"amount"}, False),
    ],
)
def test_set_operators(op, value, touched, expected):
    assert matches(row("fields", op, value), {"fields": frozenset(touched)}) is expected


def test_a_fact_the_proposal_lacks_never_matches():
    # A ticket change has no amount: neither "amount > 100" nor "amount ≠ 100" match it.
    assert not matches(row("value.amount", "gt", 100), {})
    assert not matches(row("value.amount", "ne", 100), {})
    assert not matches(row("value.status", "is_not", "closed"), {})
    assert not matches(row("attr.customer_tier", "in", ["vip"]), {})


def test_record_attributes_match_when_any_record_matches():
    r = row("attr.customer_tier", "in", ["vip", "enterprise"])
    assert matches(r, {"attr.customer_tier": ("standard", "enterprise")})
    assert not matches(r, {"attr.customer_tier": ("standard",)})
    assert matches(row("attr.invoice_amount", "gt", 100), {"attr.invoice_amount": (50.0, 450.0)})


FACTS = {"risk": 0.8, "value.amount": 450.0, "record_type": "refund", "confidence": 0.9}


def test_all_needs_every_row_and_any_needs_one():
    high, big, unsure = row("risk", "gte", 0.7), row("value.amount", "gt", 1000), row("confidence", "lt", 0.6)
    assert compile_condition({"match": "any", "rows": [high, big]}).test(FACTS)
    assert not compile_condition({"match": "all", "rows": [high, big]}).test(FACTS)
    assert not compile_condition({"match": "any", "rows": [big, unsure]}).test(FACTS)
    assert compile_condition({"match": "all", "rows": [high]}).test(FACTS)


def test_one_level_of_nesting():
    refund = row("record_type", "is", "refund")
    group = {"match": "any", "rows": [row("value.amount", "gt", 100), row("confidence", "lt", 0.6)]}
    condition = {"match": "all", "rows": [refund, group]}
    assert compile_condition(condition).test(FACTS)
    assert not compile_condition(condition).test({**FACTS, "value.amount": 50.0})
    assert compile_condition(condition).test({**FACTS, "value.amount": 50.0, "confidence": 0.5})


def test_an_empty_condition_always_matches():
    assert compile_condition({"match": "all", "rows": []}).test({})
    assert condition_text({"match": "all", "rows": []}) == "always"


def test_reasons_name_the_rows_that_matched_with_the_values_seen():
    condition = {"match": "any", "rows": [row("risk", "gte", 0.7), row("value.amount", "gt", 100)]}
    node = compile_condition(condition)
    reasons = node.reasons({**FACTS, "risk": 0.2})
    assert [r["text"] for r in reasons] == ["amount 450 > 100"]
    assert reasons[0] | {"text": ""} == {
        "field": "value.amount",
        "op": "gt",
        "expected": 100,
        "actual": 450.0,
        "text": "",
    }
    vip = row("attr.customer_tier", "in", ["vip", "enterprise"])
    tier = reason(vip, {"attr.customer_tier": ("standard", "enterprise")}, compile_row(vip))
    assert tier["text"] == "customer tier enterprise"
    assert tier["actual"] == ["enterprise"]
    permission = row("fields", "any_of", ["permission_level"])
    touched = reason(permission, {"fields": frozenset({"permission_level", "name"})}, compile_row(permission))
    assert touched["text"] == "changes permission level"


def test_conditions_read_back_in_plain_words():
    condition = {
        "match": "any",
        "rows": [
            row("risk", "gte", 0.7),
            row("value.amount", "gt", 100),
            {"match": "all", "rows": [row("attr.customer_tier", "in", ["vip", "enterprise"]), row("hour", "lt", 6)]},
        ],
    }
    assert condition_text(condition) == (
        "risk ≥ 0.7 or amount > 100 or (customer tier is VIP or enterprise and hour of day < 6)"
    )
    assert row_text(row("fields", "only", ["tags", "internal_note"])) == "changed fields are only tags, internal note"
    assert row_text(row("operation", "is_not", "soft_delete")) == "operation is not soft delete"


# Combining: a compiled condition agrees with a plain reading of all/any ---------------------------

ROWS = [row("risk", "gte", 0.5), row("confidence", "lt", 0.6), row("records", "gt", 1), row("hour", "lt", 6)]
facts_strategy = st.fixed_dictionaries(
    {
        "risk": st.floats(0, 1),
        "confidence": st.floats(0, 1),
        "records": st.integers(0, 3),
        "hour": st.integers(0, 23),
    }
)
rows_strategy = st.lists(st.sampled_from(ROWS), min_size=1, max_size=4)
match_strategy = st.sampled_from(["all", "any"])


def plain(condition, facts) -> bool:
    results = [plain(i, facts) if "rows" in i else compile_row(i)(facts) for i in condition["rows"]]
    return all(results) if condition["match"] == "all" else any(results)


@given(facts_strategy, match_strategy, rows_strategy, match_strategy, rows_strategy)
def test_compiled_conditions_agree_with_all_and_any(facts, outer, rows, inner, group_rows):
    condition = {"match": outer, "rows": [*rows, {"match": inner, "rows": group_rows}]}
    assert compile_condition(condition).test(facts) is plain(condition, facts)
