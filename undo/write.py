"""Writing an undo's plans back: the records with `executemany`, their snapshots with one
`INSERT … SELECT` of the records just written, tagged with the undo (see `revert` for the plans)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from .revert import IN_MAX, RecordPlan
from .tables import IDS, Slot


@dataclass
class Written:
    records: int = 0
    fields: int = 0
    forced: int = 0


def write_chunk(plans: list[RecordPlan], *, undo_id: int, user_id: int | None, deleted_by: str, reason: str) -> Written:
    """Write every plan's reverts: base rows with `executemany`, then one tagged history row
    per record written, copied from the record by the database.

    Call inside the chunk's transaction, right after `plan_chunk` (which locked the records).
    """
    written = Written()
    if not plans:
        return written
    tbl = plans[0].table
    now = timezone.now()
    # Records written on the same slots share one UPDATE statement, run with executemany.
    updates: dict[tuple[Slot, ...], list[list]] = {}
    record_ids: list[int] = []
    for plan in plans:
        writes = plan.to_write()
        if not writes:
            continue
        params: list = []
        for slot, value in writes.items():
            # None: soft-delete what the scope created.
            params.extend(_deleted_now(slot, now, deleted_by, reason) if value is None else value)
        params.append(plan.record_id)
        updates.setdefault(tuple(writes), []).append(params)
        record_ids.append(plan.record_id)
        written.fields += len(writes)
        written.forced += plan.forced and any(c.slot in writes for c in plan.conflicts)
    written.records = len(record_ids)
    if not record_ids:
        return written
    qn = connection.ops.quote_name
    base, pk = tbl.update_base
    # In _HISTORY_META's order: no change, run or agent, so the row never falls in their scopes.
    meta = [connection.ops.adapt_datetimefield_value(now), reason, "~", user_id, None, None, None, "", undo_id]
    with connection.cursor() as cursor:
        for slots, params in updates.items():
            assignments = ", ".join(f"{qn(f.column)} = %s" for slot in slots for f in slot.fields)
            cursor.executemany(f"UPDATE {base} SET {assignments} WHERE {pk} = %s", params)
        for start in range(0, len(record_ids), IN_MAX):
            ids = record_ids[start : start + IN_MAX]
            cursor.execute(tbl.insert_history.replace(IDS, ", ".join(["%s"] * len(ids))), [*meta, *ids])
    return written


def _deleted_now(slot: Slot, now, deleted_by: str, reason: str) -> tuple:
    at, by, why = slot.fields
    return (at.get_db_prep_save(now, connection), deleted_by[: by.max_length], reason)
