"""Conditions of routing rules: what they may read, how they compare, checked and compiled.

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
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

from django.db import models

from undo import registry

NUMBER, TEXT, SET = "number", "text", "set"
MATCHES = ("all", "any")
MAX_ROWS = 30

Facts = dict[str, Any]
Test = Callable[[Facts], bool]


class InvalidRow(ValueError):
    """One row of a condition does not check; `part` is "field", "op" or "value"."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


@dataclass(frozen=True)
class Operator:
    key: str
    symbol: str
    kind: str
    takes_list: bool = False


OPERATORS: dict[str, Operator] = {
    o.key: o
    for o in [
        Operator("eq", "=", NUMBER),
        Operator("ne", "≠", NUMBER),
        Operator("lt", "<", NUMBER),
        Operator("lte", "≤", NUMBER),
        Operator("gt", ">", NUMBER),
        Operator("gte", "≥", NUMBER),
        Operator("is", "is", TEXT),
        Operator("is_not", "is not", TEXT),
        Operator("in", "is one of", TEXT, takes_list=True),
        Operator("not_in", "is none of", TEXT, takes_list=True),
        Operator("contains", "contains", TEXT),
        Operator("any_of", "include any of", SET, takes_list=True),
        Operator("all_of", "include all of", SET, takes_list=True),
        Operator("only", "are only", SET, takes_list=True),
        Operator("none_of", "include none of", SET, takes_list=True),
    ]
}
KIND_NAMES = {NUMBER: "a number", TEXT: "text", SET: "a set of field names"}


@dataclass(frozen=True)
class FieldSpec:
    """A fact about a proposal that conditions may read."""

    key: str
    label: str
    kind: str
    section: str
    choices: tuple[str, ...] = ()
    choice_labels: dict[str, str] = field(default_factory=dict)
    minimum: float | None = None
    maximum: float | None = None
    whole: bool = False
    # One value per record touched (record attributes): a row matches when any record matches.
    many: bool = False

    def display(self, value: Any) -> str:
        if isinstance(value, float | int) and not isinstance(value, bool):
            return number_text(value)
        return self.choice_labels.get(value, str(value))

    def operators(self) -> list[Operator]:
        return [o for o in OPERATORS.values() if o.kind == self.kind]


def number_text(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)


# The fields ---------------------------------------------------------------------

PROPOSAL, VALUES, RECORDS = "The proposal", "Proposed values", "The records it touches"


@cache
def catalogue() -> dict[str, FieldSpec]:
    """Every field a condition may read, by key; built once from the governed-record registry."""
    types = registry.all_record_types()
    field_labels = {name: f.label for rt in types for name, f in rt.fields.items()}
    specs = [
        FieldSpec("risk", "risk", NUMBER, PROPOSAL, minimum=0, maximum=1),
        FieldSpec("confidence", "confidence", NUMBER, PROPOSAL, minimum=0, maximum=1),
        FieldSpec(
            "record_type",
            "record type",
            TEXT,
            PROPOSAL,
            choices=tuple(rt.name for rt in types),
        ),
        FieldSpec(
            "operation",
            "operation",
            TEXT,
            PROPOSAL,
            choices=("update", "create", "soft_delete"),
            choice_labels={"soft_delete": "soft delete"},
        ),
        FieldSpec(
            "fields",
            "changed fields",
            SET,
            PROPOSAL,
            choices=tuple(sorted(field_labels)),
            choice_labels=field_labels,
        ),
        FieldSpec("records", "records touched", NUMBER, PROPOSAL, minimum=0, whole=True),
        FieldSpec("agent", "agent", TEXT, PROPOSAL),
        FieldSpec("agent_version", "agent version", TEXT, PROPOSAL),
        FieldSpec("workflow", "workflow", TEXT, PROPOSAL),
        FieldSpec("hour", "hour of day", NUMBER, PROPOSAL, minimum=0, maximum=23, whole=True),
    ]
    values: dict[str, list] = {}
    for rt in types:
        for name, governed in rt.fields.items():
            values.setdefault(name, []).append((governed.label, governed.model_field))
    specs += [_from_model_fields(f"value.{name}", found[0][0], VALUES, found) for name, found in values.items()]
    attributes: dict[str, list] = {}
    for rt in types:
        for name, attribute in rt.attributes.items():
            attributes.setdefault(name, []).append((attribute.label, attribute.model_field))
    specs += [
        _from_model_fields(f"attr.{name}", found[0][0], RECORDS, found, many=True) for name, found in attributes.items()
    ]
    return {s.key: s for s in specs if s is not None}


def _from_model_fields(key: str, label: str, section: str, found: list, many: bool = False) -> FieldSpec | None:
    """A spec for a value or attribute; the same name on several record types shares one spec."""
    kinds = {_kind_of(model_field) for _, model_field in found}
    if None in kinds:
        return None  # dates, flags: not something conditions compare (yet)
    kind = NUMBER if kinds == {NUMBER} else TEXT
    choices: dict[str, str] = {}
    for _, model_field in found:
        if model_field.choices:
            choices.update({str(k): str(v) for k, v in model_field.flatchoices})
    if isinstance(found[0][1], models.ForeignKey):
        label = f"{label} (id)"
    whole = kind == NUMBER and all(not isinstance(f, models.DecimalField | models.FloatField) for _, f in found)
    return FieldSpec(
        key,
        label,
        kind,
        section,
        choices=tuple(choices) if kind == TEXT else (),
        choice_labels={k: v for k, v in choices.items() if k != v},
        whole=whole,
        many=many,
    )


def _kind_of(model_field: models.Field) -> str | None:
    if isinstance(model_field, models.BooleanField | models.DateField | models.TimeField | models.DurationField):
        return None
    if isinstance(model_field, models.IntegerField | models.DecimalField | models.FloatField | models.ForeignKey):
        return NUMBER
    if isinstance(model_field, models.CharField | models.TextField):
        return TEXT
    return None


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


# Plain words ---------------------------------------------------------------------


def reason(row: dict, facts: Facts, test: Test | None = None) -> dict:
    """A matching row with what was seen: {"field", "op", "expected", "actual", "text"}."""
    spec = catalogue()[row["field"]]
    op, expected = OPERATORS[row["op"]], row["value"]
    actual = facts.get(spec.key)
    if spec.many:
        test = test or compile_row(row)
        actual = [x for x in actual if test({spec.key: (x,)})]
    if spec.kind == SET:
        actual = sorted(actual)
        shown = {
            "any_of": [f for f in actual if f in expected],
            "all_of": expected,
            "only": actual,
            "none_of": expected,
        }[op.key]
        words = {"any_of": "changes", "all_of": "changes", "only": "changes only", "none_of": "changes none of"}
        text = f"{words[op.key]} {_join(spec, shown, ',' if op.key == 'none_of' else 'and')}"
    else:
        seen = _join(spec, actual if spec.many else [actual], "and")
        if op.kind == NUMBER:
            text = f"{spec.label} {seen} {op.symbol} {spec.display(expected)}"
        elif op.key in ("is", "in"):
            text = f"{spec.label} {seen}"
        elif op.key == "contains":
            text = f"{spec.label} {_short(seen)} contains “{expected}”"
        else:
            text = f"{spec.label} {seen}, not {_join(spec, expected if op.takes_list else [expected], 'or')}"
    return {"field": spec.key, "op": op.key, "expected": expected, "actual": actual, "text": text}


def condition_text(condition: dict) -> str:
    """The condition read back: "risk ≥ 0.7 or amount > 100"; "always" when it has no rows."""
    rows = condition.get("rows", [])
    if not rows:
        return "always"
    joiner = " or " if condition.get("match") == "any" else " and "
    parts = []
    for item in rows:
        if "rows" in item:
            inner = condition_text(item)
            parts.append(f"({inner})" if len(item["rows"]) > 1 else inner)
        else:
            parts.append(row_text(item))
    return joiner.join(parts)


def row_text(row: dict) -> str:
    spec = catalogue().get(row.get("field"))
    op = OPERATORS.get(row.get("op"))
    if spec is None or op is None:
        return f"{row.get('field')} {row.get('op')} {row.get('value')}"
    value = row["value"]
    if op.kind == NUMBER:
        return f"{spec.label} {op.symbol} {spec.display(value)}"
    if op.key == "in":
        return f"{spec.label} is {_join(spec, value, 'or')}"
    if op.key == "contains":
        return f"{spec.label} contains “{value}”"
    if op.kind == SET and op.key in ("any_of", "all_of"):
        return f"{spec.label} include {_join(spec, value, 'or' if op.key == 'any_of' else 'and')}"
    shown = _join(spec, value, ",") if op.takes_list else spec.display(value)
    return f"{spec.label} {op.symbol} {shown}"


def _join(spec: FieldSpec, values: list, word: str) -> str:
    shown = [spec.display(v) for v in values]
    if word == "," or len(shown) < 2:
        return ", ".join(shown)
    return ", ".join(shown[:-1]) + f" {word} " + shown[-1]


def _short(text: str, limit: int = 60) -> str:
    return f"“{text}”" if len(text) <= limit else f"“{text[: limit - 1]}…”"
