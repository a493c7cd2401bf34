"""Which records an undo's scope touches, cut into chunks of whole changes to plan and
write one transaction at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection

from . import registry
from .scopes import Scope
from .tables import Table, table


@dataclass
class Chunk:
    """Records of one type planned together (whole changes only) and written in one transaction."""

    table: Table
    record_ids: list[int]
    scope_history_ids: set[int]


def scope_rows(scope: Scope) -> Iterator[tuple[Table, list[tuple[int, int, int | None]]]]:
    """Per record type the scope touches: its scope rows as (history id, record id, change id)."""
    for rtype in registry.all_record_types():
        q = scope.history_q(rtype)
        if q is None:
            continue
        # The ORM writes the query; the rows are read as plain tuples (no per-row ORM work).
        sql, params = (
            rtype.model.history.filter(q).values_list("history_id", "id", "cs_change_id").query.sql_with_params()
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if rows:
            yield table(rtype), rows


def chunks_of(scope: Scope, *, size: int) -> tuple[int, Iterator[Chunk]]:
    """How many records the scope touches, and the chunks to plan them in.

    A change that wrote several records has them all in one chunk, so a chunk's
    transaction always holds whole changes.
    """
    found = [(tbl, rows, sorted({r[1] for r in rows})) for tbl, rows in scope_rows(scope)]
    total = sum(len(record_ids) for _, _, record_ids in found)

    def generate():
        for tbl, rows, record_ids in found:
            history_ids = {r[0] for r in rows}
            for group in _whole_changes(rows, record_ids, size):
                yield Chunk(tbl, group, history_ids)

    return total, generate()


def _whole_changes(rows, record_ids: list[int], size: int) -> Iterator[list[int]]:
    # Records written by one change are joined (union-find); `record_ids` is sorted.
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    first_record: dict[int, int] = {}
    for _, record_id, change_id in rows:
        if change_id is None:
            continue
        other = first_record.setdefault(change_id, record_id)
        if other != record_id:
            a, b = root(other), root(record_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    if not parent:  # every change wrote one record
        for start in range(0, len(record_ids), size):
            yield record_ids[start : start + size]
        return
    groups: dict[int, list[int]] = {}
    for record_id in record_ids:
        groups.setdefault(root(record_id), []).append(record_id)
    batch: list[int] = []
    for group in groups.values():
        batch.extend(group)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
