"""Conditions of routing rules, checked and compiled (the fields they read: `fields`).

A condition is JSON that an operator builds in the browser:

    {"match": "all" | "any", "rows": [row | group, ...]}
    row   = {"field": "risk", "op": "gte", "value": 0.7}
    group = {"match": "any", "rows": [row, ...]}        (one level of nesting)

Checking refuses unknown fields, operators that do not fit the field and values
of the wrong type. Compiling turns a checked condition into plain Python closures
over a proposal's facts (a dict of field key → value); nothing an operator types
is ever evaluated as code. A condition on a fact the proposal lacks (the amount of
a ticket change) does not match.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .fields import KIND_NAMES, NUMBER, OPERATORS, SET, Facts, FieldSpec, Operator, Test, catalogue, number_text
from .wording import reason

MATCHES = ("all", "any")
MAX_ROWS = 30


class InvalidRow(ValueError):
    """One row of a condition does not check; `part` is "field", "op" or "value"."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


# Checking -----------------------------------------------------------------------


def clean_row(row: dict) -> dict:
    """One row, checked and normalised: {"field", "op", "value"}; raises InvalidRow."""
    spec = catalogue().get(row.get("field") or "")
    if spec is None:
        raise InvalidRow("field", f"Unknown field {row.get('field')!r}: pick one from the list.")
    op = OPERATORS.get(row.get("op") or "")
    if op is None:
        raise InvalidRow("op", f"Unknown operator {row.get('op')!r}: pick one from the list.")
    if op.kind != spec.kind:
        symbols = [f"“{o.symbol}”" for o in spec.operators()]
        allowed = ", ".join(symbols[:-1]) + " or " + symbols[-1]
        raise InvalidRow(
            "op", f"“{op.symbol}” does not fit {spec.label}, which is {KIND_NAMES[spec.kind]}: use {allowed}."
        )
    return {"field": spec.key, "op": op.key, "value": _clean_value(spec, op, row.get("value"))}


def _clean_value(spec: FieldSpec, op: Operator, value: Any) -> Any:
    if op.takes_list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise InvalidRow("value", f"Give {spec.label} values as a comma-separated list.")
        cleaned = list(dict.fromkeys(i.strip() for i in items if i.strip()))
        if not cleaned:
            raise InvalidRow("value", f"Give at least one value for {spec.label}.")
        for item in cleaned:
            _check_choice(spec, item)
        return cleaned
    if spec.kind == NUMBER:
        return _clean_number(spec, value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRow("value", f"Give a value for {spec.label}.")
    return _check_choice(spec, value.strip())


def _clean_number(spec: FieldSpec, value: Any) -> float | int:
    described = f"{spec.label} is {'a whole number' if spec.whole else 'a number'}"
    if spec.minimum is not None and spec.maximum is not None:
        described += f" from {number_text(spec.minimum)} to {number_text(spec.maximum)}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRow("value", f"{described}: give one.")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise InvalidRow("value", f"{described}; {str(value)!r} is not a number.") from None
    if not math.isfinite(number):
        raise InvalidRow("value", f"{described}; {str(value)!r} is not a finite number.")
    if spec.whole and number != int(number):
        raise InvalidRow("value", f"{described}; {str(value)!r} is not a whole number.")
    if (spec.minimum is not None and number < spec.minimum) or (spec.maximum is not None and number > spec.maximum):
        raise InvalidRow("value", f"{described}; {number_text(number)} is out of range.")
    return int(number) if number == int(number) else number


def _check_choice(spec: FieldSpec, value: str) -> str:
    if spec.choices and value not in spec.choices:
        allowed = ", ".join(spec.choices)
        raise InvalidRow("value", f"{spec.label} is one of {allowed}; {value!r} is not.")
    return value


# Compiling ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A compiled condition (or one of its rows): `test(facts)` answers, `reasons(facts)` says why."""

    test: Test
    row: dict | None = None
    children: tuple[Node, ...] = ()

    def reasons(self, facts: Facts) -> list[dict]:
        """The rows that made a matching condition match, with the values seen (call only when it matched)."""
        if self.row is not None:
            return [reason(self.row, facts, self.test)]
        return [r for child in self.children if child.test(facts) for r in child.reasons(facts)]


def compile_condition(condition: dict) -> Node:
    """A checked condition as closures; one level of groups, as checking allows."""
    children = tuple(
        compile_condition(item) if "rows" in item else Node(compile_row(item), row=item)
        for item in condition.get("rows", [])
    )
    tests = [c.test for c in children]
    if not tests:
        return Node(_always)
    if len(tests) == 1:
        return Node(tests[0], children=children)
    if condition.get("match") == "any":

        def test(facts: Facts, tests=tests) -> bool:
            for t in tests:
                if t(facts):
                    return True
            return False

    else:

        def test(facts: Facts, tests=tests) -> bool:
            for t in tests:
                if not t(facts):
                    return False
            return True

    return Node(test, children=children)


def _always(facts: Facts) -> bool:
    return True


# x > value is value < x: with the operands flipped, a partial of the C comparison needs no Python frame.
_FLIPPED = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.gt,
    "lte": operator.ge,
    "gt": operator.lt,
    "gte": operator.le,
    "is": operator.eq,
    "is_not": operator.ne,
}


def compile_row(row: dict) -> Test:
    """One checked row as a closure over facts; facts missing → False."""
    key, op, value = row["field"], row["op"], row["value"]
    spec = catalogue()[key]
    if spec.kind == SET:
        return _set_test(key, op, frozenset(value))
    one = _predicate(op, value)
    if spec.many:

        def test_any_record(facts: Facts) -> bool:
            for x in facts.get(key, ()):
                if one(x):
                    return True
            return False

        return test_any_record

    def test(facts: Facts) -> bool:
        x = facts.get(key)
        return x is not None and one(x)

    return test


def _predicate(op: str, value) -> Callable[[Any], bool]:
    """value ↦ bool for one number or text value."""
    if op in _FLIPPED:
        return partial(_FLIPPED[op], value)
    if op == "in":
        return frozenset(value).__contains__
    if op == "not_in":
        refused = frozenset(value)
        return lambda x: x not in refused
    needle = value.casefold()
    return lambda x: needle in x.casefold()


def _set_test(key: str, op: str, value: frozenset) -> Test:
    if op == "any_of":
        return lambda facts: not value.isdisjoint(facts.get(key, ()))
    if op == "all_of":
        return lambda facts: value <= facts.get(key, frozenset())
    if op == "only":
        # A soft delete changes no field: "only tags" must not match it.
        return lambda facts: bool(facts.get(key)) and facts[key] <= value
    return lambda facts: value.isdisjoint(facts.get(key, ()))
