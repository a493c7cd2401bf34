"""How one record type's base table and history table are read and written with plain SQL.

A *slot* is what undo decides as one: a governed field, or the three soft-delete
columns together. Values travel as the database stores them; `python_value` turns
one into what the ORM would have returned, for people to read.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import registry

# A history row as read by `Table.select_history`: these first, then the tracked values.
H_ID, H_RECORD, H_TYPE, H_CHANGE, H_UNDO = range(5)
V0 = 5
_META_COLUMNS = ("history_id", "id", "history_type", "cs_change_id", "cs_undo_id")
DELETED = "deleted"


@dataclass(frozen=True, eq=False)
class Slot:
    """What is decided as one: a governed field, or the soft-delete columns together."""

    record_type: registry.RecordType
    name: str
    label: str
    positions: tuple[int, ...]  # in a row's tracked values
    fields: tuple[models.Field, ...]
    irreversible: bool = False

    def __post_init__(self):
        if len(self.positions) == 1:
            (p,) = self.positions
            object.__setattr__(self, "get", lambda values: (values[p],))
        else:
            object.__setattr__(self, "get", itemgetter(*self.positions))

    def get(self, values: tuple) -> tuple:  # replaced per instance by a fast getter
        return tuple(values[p] for p in self.positions)


class Table:
    """One record type's base table and history table, for plain-SQL reads and writes."""

    def __init__(self, rtype: registry.RecordType):
        self.rtype = rtype
        self.model = rtype.model
        self.history_model = rtype.model.history.model
        qn = connection.ops.quote_name
        self.tracked = [f for f in self.history_model.tracked_fields if not f.primary_key]
        position = {f.attname: i for i, f in enumerate(self.tracked)}
        slots = [
            Slot(
                record_type=rtype,
                name=g.name,
                label=g.label,
                positions=(position[g.model_field.attname],),
                fields=(g.model_field,),
                irreversible=rtype.irreversible or g.irreversible,
            )
            for g in rtype.fields.values()
        ]
        if rtype.soft_deletable:
            fields = tuple(self.model._meta.get_field(n) for n in registry.SOFT_DELETE_FIELDS)
            slots.append(Slot(rtype, DELETED, "deleted", tuple(position[f.attname] for f in fields), fields))
        self.slots = slots
        self.deleted_slot = slots[-1] if rtype.soft_deletable else None
        # Position in a row → the slot it belongs to (None: a tracked field agents never change).
        self.slot_at: list[Slot | None] = [None] * len(self.tracked)
        for slot in slots:
            for p in slot.positions:
                self.slot_at[p] = slot
        self.all_slots = frozenset(slots)

        pk = qn(self.model._meta.pk.column)
        columns = ", ".join(qn(f.column) for f in self.tracked)
        base, history = qn(self.model._meta.db_table), qn(self.history_model._meta.db_table)
        meta = ", ".join(qn(c) for c in _META_COLUMNS)
        self.select_history = f"SELECT {meta}, {columns} FROM {history} WHERE {qn('id')} IN (%s) ORDER BY 2, 1"
        self.select_base = f"SELECT {pk}, {columns} FROM {base} WHERE {pk} IN (%s)"
        # PostgreSQL: the records stay locked until the chunk commits (the apply path locks them too).
        # SQLite has no row locks; the IMMEDIATE transaction already holds the write lock.
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        self.select_base_for_update = self.select_base + lock
        self.update_base = base, pk
        self.insert_history = self._insert_statement()

    def _insert_statement(self) -> str:
        # The snapshot is the record as it is now (just written, in the same transaction),
        # plus the history columns: the database copies the row, nothing is bound per value.
        # Parameters: _HISTORY_META's values, then the record ids (`IDS` stands for their placeholders).
        names = [f.attname for f in self.tracked] + ["id", *_HISTORY_META]
        known = set(names) | {"history_id"}
        unknown = [f.attname for f in self.history_model._meta.concrete_fields if f.attname not in known]
        if unknown:
            raise ImproperlyConfigured(
                f"{self.history_model.__name__}: undo does not know how to fill {', '.join(unknown)}"
            )
        qn = connection.ops.quote_name
        columns = [self.history_model._meta.get_field(n).column for n in names]
        pk = qn(self.model._meta.pk.column)
        copied = [qn(f.column) for f in self.tracked] + [pk]
        return "INSERT INTO {} ({}) SELECT {}, {} FROM {} WHERE {} IN ({}) ORDER BY {}".format(
            qn(self.history_model._meta.db_table),
            ", ".join(qn(c) for c in columns),
            ", ".join(copied),
            ", ".join(["%s"] * len(_HISTORY_META)),
            qn(self.model._meta.db_table),
            pk,
            IDS,
            pk,
        )


IDS = "<ids>"
_HISTORY_META = (
    "history_date",
    "history_change_reason",
    "history_type",
    "history_user_id",
    "cs_change_id",
    "cs_run_id",
    "cs_agent_id",
    "cs_agent_label",
    "cs_undo_id",
)

_tables: dict[str, Table] = {}


def table(rtype: registry.RecordType) -> Table:
    """The record type's Table, built once per process."""
    if rtype.name not in _tables:
        _tables[rtype.name] = Table(rtype)
    return _tables[rtype.name]


def python_value(model_field: models.Field, raw: Any) -> Any:
    """A value as read by plain SQL, as the ORM would have returned it."""
    if raw is None:
        return None
    if isinstance(model_field, models.DecimalField):
        return decimal.Decimal(str(raw)).quantize(decimal.Decimal(1).scaleb(-model_field.decimal_places))
    if isinstance(model_field, models.DateTimeField):
        value = parse_datetime(raw) if isinstance(raw, str) else raw
        if settings.USE_TZ and value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value, dt.UTC)
        return value
    if isinstance(model_field, models.BooleanField):
        return bool(raw)
    return raw
