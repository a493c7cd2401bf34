"""The governed-record registry.

A model becomes a *record type* by being registered here: its owner group, the
fields agents may change, and how to say it and a change to it in plain words.
Only registered models and fields can be targeted by a change. Registering also
tracks the model with simple-history, with history rows tagged by
`undo.models.GovernedHistory`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import simple_history
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from .models import GovernedHistory

# Also read as registry.InvalidValue, registry.KeyedInvalid and registry.to_json by callers.
from .values import InvalidValue, KeyedInvalid, check_text, coerce, to_json

SOFT_DELETE_FIELDS = ("deleted_at", "deleted_by", "deleted_reason")


@dataclass(frozen=True)
class GovernedField:
    name: str
    label: str
    model_field: models.Field
    irreversible: bool = False
    # Inclusive bounds of a number field (None: only its column's range).
    minimum: Any = None
    maximum: Any = None

    def check_bounds(self, value: Any) -> None:
        if value is None:
            return
        if self.minimum is not None and value < self.minimum:
            raise InvalidValue(f"must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidValue(f"must be at most {self.maximum}")


@dataclass(frozen=True)
class Attribute:
    """A fact about a record that routing rules may read, e.g. a ticket's customer tier.

    `path` follows foreign keys with dots ("customer.tier"); `model_field` is the
    field at its end, so readers know its kind and choices.
    """

    name: str
    label: str
    path: str
    model: type[models.Model]

    @property
    def lookup(self) -> str:
        return self.path.replace(".", "__")

    @cached_property
    def model_field(self) -> models.Field:
        # Resolved on first use: related models may not be loaded yet at registration.
        current, model_field = self.model, None
        for part in self.path.split("."):
            if current is None:
                raise ImproperlyConfigured(f"attribute {self.name!r}: {self.path!r} goes past a non-relation")
            model_field = current._meta.get_field(part)
            current = model_field.related_model
        return model_field


@dataclass
class RecordType:
    name: str
    model: type[models.Model]
    owner_group: str
    fields: dict[str, GovernedField]
    label: str
    describe_record: Callable[[models.Model], str]
    attributes: dict[str, Attribute] = field(default_factory=dict)
    irreversible: bool = False
    creatable: bool = True
    required_on_create: tuple[str, ...] = ()
    soft_deletable: bool = False
    select_related: tuple[str, ...] = ()

    # Reading -------------------------------------------------------------

    def describe(self, instance: models.Model) -> str:
        """The record in plain words: "Northwind Solar (customer #42)"."""
        return self.describe_record(instance)

    def display(self, field_name: str, value: Any) -> str:
        """A stored (JSON) value as a person reads it."""
        if value is None or value == "":
            return "(empty)"
        model_field = self.fields[field_name].model_field
        if model_field.choices:
            return str(dict(model_field.flatchoices).get(value, value))
        if isinstance(model_field, models.BooleanField):
            return "yes" if value else "no"
        if isinstance(model_field, models.ForeignKey):
            return describe_reference(model_field.related_model, value)
        return str(value)

    def current_values(self, instance: models.Model, names) -> dict[str, Any]:
        """The record's current values of `names`, as JSON values."""
        return {n: to_json(getattr(instance, self.fields[n].model_field.attname)) for n in names}

    def describe_change(
        self, operation: str, instance: models.Model | None, values: dict[str, Any], before: dict | None = None
    ) -> str:
        """One proposed action on one record, as a sentence a reviewer can check.

        "from" is the record's current value, or the value in `before` (what an applied
        change was written over) when given.
        """
        if operation == "create":
            parts = self._field_values(values)
            return f"Create a {self.label} with {parts}" if parts else f"Create a {self.label}"
        record = self.describe(instance) if instance is not None else f"{self.label} (missing)"
        if operation == "soft_delete":
            return f"Delete {record} (soft delete: it can be restored)"
        current = self.current_values(instance, values) if instance is not None else {}
        current.update(before or {})
        parts = [
            f"the {self.fields[n].label} of {record} from {self.display(n, current.get(n))} to {self.display(n, v)}"
            if i == 0
            else f"the {self.fields[n].label} from {self.display(n, current.get(n))} to {self.display(n, v)}"
            for i, (n, v) in enumerate(self._in_field_order(values))
        ]
        return "Change " + (", and ".join(parts) if parts else f"nothing on {record}")

    def _in_field_order(self, values: dict[str, Any]) -> list[tuple[str, Any]]:
        # In the registration's order: a JSON column on PostgreSQL (jsonb) does not keep the agent's key order.
        order = {name: i for i, name in enumerate(self.fields)}
        return sorted(values.items(), key=lambda item: order.get(item[0], len(order)))

    def _field_values(self, values: dict[str, Any]) -> str:
        """ "invoice #12, amount 112.50": a reference already names its kind, so no label before it."""
        return ", ".join(
            self.display(n, v)
            if isinstance(self.fields[n].model_field, models.ForeignKey)
            else f"{self.fields[n].label} {self.display(n, v)}"
            for n, v in self._in_field_order(values)
        )

    @property
    def plural(self) -> str:
        meta = self.model._meta
        return str(meta.verbose_name_plural) if self.label == str(meta.verbose_name) else f"{self.label}s"

    def describe_alike(self, operation: str, values: dict[str, Any]) -> str:
        """What many alike changes do, for a group of them: "set the status of tickets to resolved"."""
        if operation == "create":
            parts = self._field_values(values)
            return f"create {self.plural} with {parts}" if parts else f"create {self.plural}"
        if operation == "soft_delete":
            return f"delete {self.plural} (soft delete: they can be restored)"
        parts = [
            f"the {self.fields[n].label} of {self.plural} to {self.display(n, v)}"
            if i == 0
            else f"the {self.fields[n].label} to {self.display(n, v)}"
            for i, (n, v) in enumerate(self._in_field_order(values))
        ]
        return "set " + ", and ".join(parts)

    def touches_irreversible(self, field_names) -> bool:
        return self.irreversible or any(self.fields[n].irreversible for n in field_names if n in self.fields)

    def queryset(self):
        """Every record, soft-deleted ones included (the apply path must see them all)."""
        return self.model._base_manager.select_related(*self.select_related)

    def load_attributes(self, ids) -> dict[int, dict[str, Any]]:
        """The attributes of the records with these ids, in one query: {id: {name: value}}.

        A missing id is absent from the answer (callers use that to check existence).
        """
        return self.read_attributes(ids)[0]

    def read_attributes(self, ids) -> tuple[dict[int, dict[str, Any]], set[int]]:
        """The attributes of the records with these ids, and which of them are soft-deleted: one query."""
        lookups = {a.name: a.lookup for a in self.attributes.values()}
        extra = ("deleted_at",) if self.soft_deletable else ()
        rows = self.model._base_manager.filter(pk__in=ids).values("pk", *lookups.values(), *extra)
        attributes = {row["pk"]: {name: row[lookup] for name, lookup in lookups.items()} for row in rows}
        deleted = {row["pk"] for row in rows if extra and row["deleted_at"] is not None}
        return attributes, deleted

    def new_record_attributes(self, values_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The attributes records created with these values would have, one query per foreign key read.

        "status" is the proposed status (or the field's default); "customer.tier" reads
        the tier of the customer the proposed values name.
        """
        results: list[dict[str, Any]] = [{} for _ in values_list]
        through: dict[str, list[Attribute]] = {}
        for attribute in self.attributes.values():
            head, _, rest = attribute.path.partition(".")
            if not rest:
                default = attribute.model_field.get_default()
                for values, result in zip(values_list, results, strict=True):
                    result[attribute.name] = values.get(head, default)
            else:
                through.setdefault(head, []).append(attribute)
        for head, attributes in through.items():
            ids = {values[head] for values in values_list if values.get(head) is not None}
            related = self.model._meta.get_field(head).related_model
            lookups = {a.name: a.lookup.split("__", 1)[1] for a in attributes}
            rows = {row["pk"]: row for row in related._base_manager.filter(pk__in=ids).values("pk", *lookups.values())}
            for values, result in zip(values_list, results, strict=True):
                row = rows.get(values.get(head), {})
                for name, lookup in lookups.items():
                    result[name] = row.get(lookup)
        return results

    # Checking proposed values --------------------------------------------

    def coerce(self, field_name: str, value: Any, *, references: bool = True) -> Any:
        """Turn a JSON value into the field's Python value, strictly; raise InvalidValue.

        `references=False` leaves out the query that checks a foreign key names a record
        (see `missing_references`, which checks many at once).
        """
        if field_name not in self.fields:
            shown = field_name if len(field_name) <= 60 else field_name[:60] + "…"
            raise InvalidValue(f"agents may not change '{shown}' of a {self.label}")
        return coerce(self.fields[field_name].model_field, value, references=references)

    def clean_values(self, values: dict[str, Any], *, seen: bool = False, references: bool = True) -> dict[str, Any]:
        """Coerce every proposed value, check it is allowed text and within its field's bounds, and
        return them in canonical JSON form; raise KeyedInvalid.

        `seen=True` checks values an agent read from a record (expected state): they may hold
        whatever a record may hold, so only their type is checked (and no reference is looked up).
        `references=False` leaves foreign keys to `missing_references`.
        """
        cleaned = {}
        for name, value in values.items():
            try:
                result = self.coerce(name, value, references=references and not seen)
                if isinstance(result, str):
                    check_text(result, self.fields[name].model_field, seen=seen)
                elif not seen:
                    self.fields[name].check_bounds(result)
                cleaned[name] = to_json(result)
            except InvalidValue as exc:
                raise KeyedInvalid(name, str(exc)) from None
        return cleaned

    def missing_references(self, values_list: list[dict[str, Any]]) -> dict[int, KeyedInvalid]:
        """Which of these cleaned values name a record that does not exist, by position: one query
        per foreign key field, however many values."""
        errors: dict[int, KeyedInvalid] = {}
        for name, governed in self.fields.items():
            model_field = governed.model_field
            if not isinstance(model_field, models.ForeignKey):
                continue
            ids = {values[name] for values in values_list if values.get(name) is not None}
            if not ids:
                continue
            related = model_field.related_model
            existing = set(related._base_manager.filter(pk__in=ids).values_list("pk", flat=True))
            for i, values in enumerate(values_list):
                pk = values.get(name)
                if pk is not None and pk not in existing and i not in errors:
                    errors[i] = KeyedInvalid(name, f"no {related._meta.verbose_name} has id {pk}")
        return errors


_registry: dict[str, RecordType] = {}


def register(
    model: type[models.Model],
    *,
    name: str,
    owner_group: str,
    fields: dict[str, str] | list[str],
    describe: Callable[[models.Model], str],
    label: str | None = None,
    attributes: dict[str, str] | tuple[str, ...] = (),
    irreversible: bool = False,
    irreversible_fields: tuple[str, ...] = (),
    creatable: bool = True,
    required_on_create: tuple[str, ...] = (),
    select_related: tuple[str, ...] = (),
    bounds: dict[str, tuple[Any, Any]] | None = None,
) -> RecordType:
    """Govern `model`: agents may then propose changes to `fields` of its records.

    `attributes` names facts about a record that routing rules may read: a tuple of
    field names, or {name: dotted path}, e.g. {"customer_tier": "customer.tier"}.
    `bounds` gives number fields their inclusive (minimum, maximum), None for no bound:
    {"amount": (Decimal("0.00"), None)}; proposals and reviewers' edits outside them are refused.
    """
    if name in _registry:
        raise ImproperlyConfigured(f"record type {name!r} is registered twice")
    labels = fields if isinstance(fields, dict) else {f: None for f in fields}
    bounds = bounds or {}
    unknown = set(bounds) - set(labels)
    if unknown:
        raise ImproperlyConfigured(f"record type {name!r}: bounds for fields agents may not change: {sorted(unknown)}")
    governed = {}
    for field_name, field_label in labels.items():
        model_field = model._meta.get_field(field_name)
        minimum, maximum = bounds.get(field_name, (None, None))
        governed[field_name] = GovernedField(
            name=field_name,
            label=field_label or str(model_field.verbose_name),
            model_field=model_field,
            irreversible=field_name in irreversible_fields,
            minimum=minimum,
            maximum=maximum,
        )
    field_names = {f.name for f in model._meta.fields}
    record_type = RecordType(
        name=name,
        model=model,
        owner_group=owner_group,
        fields=governed,
        label=label or str(model._meta.verbose_name),
        describe_record=describe,
        attributes=_attributes(model, attributes),
        irreversible=irreversible,
        creatable=creatable,
        required_on_create=required_on_create,
        soft_deletable=all(f in field_names for f in SOFT_DELETE_FIELDS),
        select_related=select_related,
    )
    if not hasattr(model, "history"):
        simple_history.register(model, bases=[GovernedHistory])
    _registry[name] = record_type
    return record_type


def _attributes(model: type[models.Model], declared) -> dict[str, Attribute]:
    paths = declared if isinstance(declared, dict) else {name: name for name in declared}
    for path in paths.values():
        model._meta.get_field(path.split(".")[0])  # a typo fails at registration, not on first use
    return {
        name: Attribute(name=name, label=name.replace("_", " "), path=path, model=model) for name, path in paths.items()
    }


def describe_reference(model: type[models.Model], pk: Any) -> str:
    """The record a foreign key names, as a person reads it: "Northwind Solar (customer #42)"."""
    kind = f"{model._meta.verbose_name} #{pk}"
    rtype = for_model(model)
    try:
        found = (rtype.queryset() if rtype else model._base_manager).filter(pk=pk).first()
    except (TypeError, ValueError, OverflowError):  # not an id at all (an agent's expected value, say)
        return kind
    if found is None:
        return f"{kind} (not found)"
    return rtype.describe(found) if rtype else f"{found} ({kind})"


def get(name: str) -> RecordType:
    """The record type called `name`; KeyError if none is registered."""
    return _registry[name]


def all_record_types() -> list[RecordType]:
    return list(_registry.values())


def for_model(model: type[models.Model]) -> RecordType | None:
    for record_type in _registry.values():
        if record_type.model is model:
            return record_type
    return None
