"""Applying one change to governed records, with a tagged snapshot of each write.

This is the only path that writes governed records. It runs inside the
caller's transaction: if anything raises, nothing of the change is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from . import registry
from .history import Tags, tagged


@dataclass(frozen=True)
class Mismatch:
    record_id: int
    field: str
    expected: Any
    actual: Any


class ApplyConflict(Exception):
    """A record no longer holds the values the change expects."""

    def __init__(self, record_type: registry.RecordType, mismatches: list[Mismatch]):
        self.mismatches = mismatches
        parts = [
            f"{record_type.label} #{m.record_id}: {record_type.fields[m.field].label} is now "
            f"{record_type.display(m.field, m.actual)}, the agent expected {record_type.display(m.field, m.expected)}"
            for m in mismatches
        ]
        super().__init__("The record changed since the agent looked: " + "; ".join(parts))


class ApplyError(Exception):
    """The change cannot be applied as it stands (a record is gone, or deleted)."""


def apply_change(
    *,
    record_type: str,
    operation: str,
    record_ids: list[int],
    values: dict[str, Any],
    expected: dict[str, dict[str, Any]],
    tags: Tags,
    user=None,
    reason: str = "",
) -> list[int]:
    """Write one change to its records and snapshot each; returns the ids written.

    Raises ApplyConflict when a record no longer matches `expected` and ApplyError
    when a record is missing. Call inside a transaction (or savepoint).
    """
    rtype = registry.get(record_type)
    if operation == "create":
        instance = rtype.model(**{rtype.fields[n].model_field.attname: rtype.coerce(n, v) for n, v in values.items()})
        _save(instance, tags=tags, user=user, reason=reason)
        return [instance.pk]

    records = _lock(rtype, record_ids)
    mismatches = []
    for pk in record_ids:
        for name, want in expected.get(str(pk), {}).items():
            actual = getattr(records[pk], rtype.fields[name].model_field.attname)
            if rtype.coerce(name, want) != actual:
                mismatches.append(Mismatch(pk, name, want, registry.to_json(actual)))
    if mismatches:
        raise ApplyConflict(rtype, mismatches)

    for pk in record_ids:
        instance = records[pk]
        if operation == "soft_delete":
            instance.deleted_at = timezone.now()
            instance.deleted_by = tags.agent_label
            instance.deleted_reason = reason
            fields = list(registry.SOFT_DELETE_FIELDS)
        else:
            for name, value in values.items():
                setattr(instance, rtype.fields[name].model_field.attname, rtype.coerce(name, value))
            fields = [rtype.fields[name].model_field.attname for name in values]
        _save(instance, tags=tags, user=user, reason=reason, update_fields=fields)
    return list(record_ids)


def _lock(rtype: registry.RecordType, record_ids: list[int]) -> dict[int, Any]:
    # select_for_update locks rows on PostgreSQL; SQLite ignores it, and the
    # IMMEDIATE transaction already holds the database's write lock.
    records = {r.pk: r for r in rtype.queryset().select_for_update(of=("self",)).filter(pk__in=record_ids)}
    missing = [pk for pk in record_ids if pk not in records]
    if missing:
        raise ApplyError(f"{rtype.label} {', '.join(f'#{pk}' for pk in missing)} no longer exists")
    if rtype.soft_deletable:
        deleted = [pk for pk in record_ids if records[pk].deleted_at is not None]
        if deleted:
            raise ApplyError(f"{rtype.label} {', '.join(f'#{pk}' for pk in deleted)} was deleted")
    return records


def _save(instance, *, tags: Tags, user, reason: str, update_fields=None) -> None:
    # No request in a worker: set the history user and reason on the instance,
    # or simple-history records "nobody".
    instance._history_user = user
    instance._change_reason = reason
    with tagged(tags):
        instance.save(update_fields=update_fields)
