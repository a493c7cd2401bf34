"""The fields routing conditions may read, and the operators that compare them.

A closed catalogue, built once from the governed-record registry: the proposal
itself (risk, confidence, record type, operation, changed fields, records
touched, agent, workflow, hour of day), each governed field's proposed value
("value.amount"), and each registered record attribute ("attr.customer_tier").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.db import models

from undo import registry

NUMBER, TEXT, SET = "number", "text", "set"

Facts = dict[str, Any]
Test = Callable[[Facts], bool]


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
