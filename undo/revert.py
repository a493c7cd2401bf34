"""The undo engine: which fields of which records go back, and writing them back in bulk.

A *scope* picks history rows by their tags (changes, a run, agents in a time
window, the rows of another undo, or one record's versions after a given one).
For every record the scope wrote, the whole history of that record is read and
each *slot* (one governed field, or the three soft-delete columns together) the
scope changed is decided on its own:

- **revert**: nobody outside the scope changed it since; it goes back to its value
  before the scope;
- **conflict**: someone outside the scope (a person, another run, another undo)
  changed it after the scope's last write; it is left alone unless the owner
  forces that record; other slots of the same record are still reverted;
- **already back**: it holds its value before the scope already (a person put it
  back), or an earlier undo of the scope set it back (whatever came after it is
  someone else's); nothing is written, whatever the owner forces.

A record the owner *skips* is left exactly as it is, whatever its slots' fate.

A change goes back whole or not at all: when part of it stays (a conflict, a record
skipped or gone), the rest of it is *held* where it is too, on all its records.

"Its value before the scope" is found by walking back from the scope's last
write to the slot, over the scope's own writes (and those of this scope's
earlier undos and redos, its *chain*, and of any undo or redo of the scope's
changes on that record), to the first write by someone else: a person's edit in
the middle of the scope is kept, never lost.

A record the scope *created* is soft-deleted (unless anyone else changed it since).

Reads use plain SQL on whole chunks of records: one query for the histories, one
for the records (`undo.write` writes the plans back the same way). Values travel
as the database stores them, so nothing is converted on the hot path.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

from django.db import connection

from .chunks import Chunk
from .selectors import UndoneChanges
from .tables import H_CHANGE, H_ID, H_RECORD, H_TYPE, H_UNDO, V0, Slot, Table

SCOPE, CHAIN, OTHER = "scope", "chain", "other"
_NONE: frozenset = frozenset()


@dataclass
class Conflict:
    """A slot the scope changed that someone outside it changed again afterwards (or cannot be undone)."""

    slot: Slot
    before: tuple | None  # what forcing writes (None: soft-delete what the scope created)
    written: tuple  # the scope's last value
    current: tuple
    later: list[int]  # history ids of the later writes by others, oldest first
    outside_history: bool = False  # the record differs from its last snapshot
    irreversible: bool = False


@dataclass(slots=True)
class RecordPlan:
    """What undoing the scope does to one record."""

    table: Table
    record_id: int
    current: tuple | None = None  # the record's tracked values as stored now
    reverts: dict[Slot, tuple | None] = field(default_factory=dict)  # slot → value it goes back to
    conflicts: list[Conflict] = field(default_factory=list)
    already: list[Slot] = field(default_factory=list)
    undo_create: bool = False  # the scope created it: undoing soft-deletes it
    cannot: str = ""  # why nothing can be done (record gone, no soft delete)
    forced: bool = False
    skipped: bool = False  # the owner chose to leave it exactly as it is
    # Forced, but a conflicting field was written again after the owner's preview: not forced.
    changed_since_preview: bool = False
    change_slots: dict[int, set[Slot]] = field(default_factory=dict)
    # Slots that stay because a change that wrote them stays (slot → that change): a change
    # goes back whole or not at all.
    held: dict[Slot, int] = field(default_factory=dict)
    last_undo_id: int | None = None  # the undo that wrote the record's newest version, if one did

    @property
    def key(self) -> str:
        return record_key(self.table.rtype.name, self.record_id)

    def to_write(self) -> dict[Slot, tuple | None]:
        if self.skipped:
            return {}
        if self.forced and self.conflicts:
            return {**self.reverts, **{c.slot: c.before for c in self.conflicts if c.slot not in self.held}}
        return self.reverts

    def left_slots(self) -> set[Slot]:
        """Slots the scope changed that stay as they are: conflicts not forced, slots held with
        their change, or every slot of a record skipped or gone."""
        if self.cannot or self.skipped:
            return set(self.table.slots)
        kept = set(self.held)
        if not self.forced:
            kept.update(c.slot for c in self.conflicts)
        return kept

    @property
    def stays_in_part(self) -> bool:
        """Something the scope wrote here stays: a conflict not forced, a held slot, a record skipped or gone."""
        return bool((self.conflicts and not self.forced) or self.held or self.cannot or self.skipped)

    def hold(self, slot: Slot, change_id: int) -> None:
        self.held[slot] = change_id
        self.reverts.pop(slot, None)


def changes_taken_back(plans: list[RecordPlan]) -> set[int]:
    """The changes these plans undo (or redo): some of their writes are taken back and none
    stays in place, on any of their records."""
    done: set[int] = set()
    not_done: set[int] = set()
    for plan in plans:
        writes = plan.to_write().keys()
        left = plan.left_slots() if plan.stays_in_part else _NONE
        for change, slots in plan.change_slots.items():
            if left and not left.isdisjoint(slots):
                not_done.add(change)
            elif not writes.isdisjoint(slots):
                done.add(change)
    return done - not_done


def record_key(record_type: str, record_id: int) -> str:
    return f"{record_type}:{record_id}"


def plan_chunk(
    chunk: Chunk,
    *,
    chain: frozenset[int],
    forced: frozenset[str] = frozenset(),
    skipped: frozenset[str] = frozenset(),
    seen: int | None = None,
    candidates: frozenset[int] | None = None,
    redos: Mapping[int, int] | None = None,
    undone: UndoneChanges | None = None,
    lock: bool = False,
) -> list[RecordPlan]:
    """Decide every slot of every record in the chunk. To write it, call with `lock`
    inside the transaction that writes.

    `chain`: ids of undos whose rows count as the scope's own (its earlier undos and redos).
    `forced`, `skipped`: record keys ("ticket:12") the owner forces or leaves as they are.
    `seen`: the newest history id of this record type when the owner saw the preview; a
    force never overwrites a write the owner has not seen.
    `candidates`: the change ids whose fate to report (None: the changes in the scope).
    `redos`: redo id → the undo it reverses, for every redo (their pairs of writes cancel out).
    `undone`: what undos did to changes, for a scope of changes (not a redo): an undo or redo
    of the scope's changes counts as the chain, and a change undone already is not undone again.
    """
    tbl = chunk.table
    # Ordered by record, then version.
    rows = _select_in(tbl.select_history, chunk.record_ids)
    histories = {record_id: list(group) for record_id, group in groupby(rows, itemgetter(H_RECORD))}
    select_base = tbl.select_base_for_update if lock else tbl.select_base
    base = {row[0]: row[1:] for row in _select_in(select_base, chunk.record_ids)}
    plans = []
    for record_id in chunk.record_ids:
        plan = _plan_record(
            tbl,
            record_id,
            histories.get(record_id, []),
            base.get(record_id),
            chunk.scope_history_ids,
            chain,
            candidates,
            redos or {},
            undone,
        )
        if forced or skipped:
            key = plan.key
            plan.skipped = key in skipped
            plan.forced = key in forced and not plan.skipped
            if plan.forced and seen is not None and any(h > seen for c in plan.conflicts for h in c.later):
                plan.forced, plan.changed_since_preview = False, True
        plans.append(plan)
    _keep_changes_whole(plans)
    return plans


def _keep_changes_whole(plans: list[RecordPlan]) -> None:
    """A change goes back whole or not at all: when part of it stays (a conflict, a record
    skipped or gone), every slot it wrote stays, on each of its records; and so does every
    other change that wrote one of those slots, or it would go back only in part."""
    stuck = [(plan, plan.left_slots()) for plan in plans if plan.stays_in_part]
    if not stuck:
        return
    pending = [
        change for plan, left in stuck for change, slots in plan.change_slots.items() if not left.isdisjoint(slots)
    ]
    if not pending:
        return
    by_change: dict[int, list[RecordPlan]] = {}
    for plan in plans:
        for change in plan.change_slots:
            by_change.setdefault(change, []).append(plan)
    stays: set[int] = set()
    while pending:
        change = pending.pop()
        if change in stays:
            continue
        stays.add(change)
        for plan in by_change[change]:
            writes = plan.to_write()
            for slot in plan.change_slots[change] & writes.keys():
                plan.hold(slot, change)
                pending.extend(c for c, slots in plan.change_slots.items() if slot in slots and c not in stays)


def _select_in(sql: str, ids: list[int]) -> list[tuple]:
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), IN_MAX):
            part = ids[start : start + IN_MAX]
            cursor.execute(sql % ", ".join(["%s"] * len(part)), part)
            rows.extend(cursor.fetchall())
    return rows


# Ids bound in one IN list: within SQLite's and PostgreSQL's limits on parameters.
IN_MAX = 5000


def _plan_record(
    tbl: Table,
    record_id: int,
    rows: list[tuple],
    current: tuple | None,
    scope_ids: set[int],
    chain: frozenset[int],
    candidates: frozenset[int] | None,
    redos: Mapping[int, int],
    undone: UndoneChanges | None = None,
) -> RecordPlan:
    plan = RecordPlan(tbl, record_id, last_undo_id=rows[-1][H_UNDO] if rows else None)
    if candidates is None and current is not None and _only_newest_in_scope(rows, scope_ids, chain):
        newest, previous = rows[-1][V0:], rows[-2][V0:]
        if current == newest:
            # The common shape (one write by the scope, the newest, on a record's own history),
            # decided without the walk below, to the same outcome: every slot it changed goes
            # back to the version before it.
            changed = _changed_slots(tbl, newest, previous)
            if (change_id := rows[-1][H_CHANGE]) is not None:
                plan.change_slots[change_id] = set(changed)
            _plan_last_write(plan, tbl, changed, previous, current)
            return plan
    written_by_undos = undone is not None and any(r[H_UNDO] is not None for r in rows)
    if written_by_undos and undone.by_undo:
        # An undo (or redo) of this record's changes in the scope is the scope's own history too.
        own_changes = {r[H_CHANGE] for r in rows if r[H_ID] in scope_ids}
        kinds = [
            SCOPE
            if r[H_ID] in scope_ids
            else CHAIN
            if r[H_UNDO] in chain or undone.touched(r[H_UNDO], own_changes)
            else OTHER
            for r in rows
        ]
    else:
        kinds = [SCOPE if r[H_ID] in scope_ids else CHAIN if r[H_UNDO] in chain else OTHER for r in rows]
    values = [r[V0:] for r in rows]
    n = len(rows)
    scoped = [i for i in range(n) if kinds[i] is SCOPE]

    # Which slots each row changed (the first row, a creation, sets them all).
    changed: list[frozenset[Slot] | set[Slot]] = [tbl.all_slots]
    changed.extend(_changed_slots(tbl, values[i], values[i - 1]) for i in range(1, n))
    if redos:
        _cancel_undo_redo_pairs(rows, kinds, changed, values, redos)
    # A change undone already is not undone again (an undo wrote its records, if it was).
    taken_back = undone.taken_back if written_by_undos else _NONE
    for i in scoped if candidates is None else range(n):
        change_id = rows[i][H_CHANGE]
        if change_id is not None and (candidates is None or change_id in candidates) and change_id not in taken_back:
            plan.change_slots.setdefault(change_id, set()).update(changed[i])

    if current is None:
        plan.cannot = f"{tbl.rtype.label} #{record_id} no longer exists"
        return plan
    if scoped and scoped[0] == 0 and rows[0][H_TYPE] == "+":
        _plan_create_undo(plan, tbl, rows, kinds, changed, values, current)
        return plan

    plan.current = current
    scope_slots = set().union(*(changed[i] for i in scoped))
    for slot in tbl.slots:
        if slot not in scope_slots:
            continue
        last, own, before, later = None, None, None, []
        for i in range(n - 1, -1, -1):
            if slot not in changed[i]:
                continue
            if own is None and kinds[i] is not OTHER:
                own = i  # the newest write by the scope or its chain: what it left there
            if last is None:
                if kinds[i] is SCOPE:
                    last = i
                elif kinds[i] is OTHER:
                    later.append(i)
            elif kinds[i] is OTHER:
                before = slot.get(values[i])
                break
            # Rows of the scope and of its chain are walked over: the value before is someone else's.
        if before is None:
            # No version before the scope's writes is kept (history pruned): nothing to go back to.
            plan.reverts.clear()
            plan.conflicts.clear()
            plan.cannot = f"{tbl.rtype.label} #{record_id} has no version before these changes to go back to"
            return plan
        now = slot.get(current)
        outside = now != slot.get(values[-1])
        left = slot.get(values[own])
        if now == before or left == before:
            # Back as it was; or the chain put it back already, and what came after is someone else's.
            plan.already.append(slot)
        elif later or outside or slot.irreversible:
            later_ids = [rows[i][H_ID] for i in reversed(later)]
            plan.conflicts.append(Conflict(slot, before, left, now, later_ids, outside, slot.irreversible))
        else:
            plan.reverts[slot] = before
    return plan


def _cancel_undo_redo_pairs(rows, kinds, changed, values, redos: Mapping[int, int]) -> None:
    """An undo's write and its redo's write that puts a slot back as it was cancel out: for
    that slot (when nobody changed it between them) neither counts as someone else's edit.
    Without this, undoing a change after its run was undone and redone would find conflicts."""
    for j, row in enumerate(rows):
        target = redos.get(row[H_UNDO])
        if target is None or kinds[j] is not OTHER:
            continue
        i = next((i for i in range(j - 1, 0, -1) if rows[i][H_UNDO] == target), None)
        if i is None or kinds[i] is not OTHER:
            continue
        for slot in changed[i] & changed[j]:
            between = any(slot in changed[k] for k in range(i + 1, j))
            if not between and slot.get(values[j]) == slot.get(values[i - 1]):
                changed[i] = changed[i] - {slot}
                changed[j] = changed[j] - {slot}


def _only_newest_in_scope(rows: list[tuple], scope_ids: set[int], chain: frozenset[int]) -> bool:
    """True when the scope wrote only the record's newest version, and an earlier one exists
    that neither the scope nor its chain wrote."""
    if len(rows) < 2 or rows[-1][H_ID] not in scope_ids:
        return False
    for row in rows[:-1]:
        if row[H_ID] in scope_ids or row[H_UNDO] in chain:
            return False
    return True


def _changed_slots(tbl: Table, now: tuple, before: tuple) -> frozenset[Slot] | set[Slot]:
    if now == before:
        return _NONE
    slot_at = tbl.slot_at
    found = {slot_at[p] for p in range(len(slot_at)) if now[p] != before[p]}
    found.discard(None)
    return found


def _plan_last_write(plan: RecordPlan, tbl: Table, changed, previous: tuple, current: tuple) -> None:
    plan.current = current
    for slot in tbl.slots:
        if slot not in changed:
            continue
        before = slot.get(previous)
        if slot.irreversible:
            now = slot.get(current)
            plan.conflicts.append(Conflict(slot, before, now, now, [], False, True))
        else:
            plan.reverts[slot] = before


def _plan_create_undo(plan, tbl, rows, kinds, changed, values, current) -> None:
    plan.current = current
    deleted = tbl.deleted_slot
    if deleted is None:
        plan.cannot = f"a {tbl.rtype.label} cannot be deleted (it has no soft delete), so its creation stays"
        return
    own = next((i for i in range(len(rows) - 1, -1, -1) if kinds[i] is not OTHER and deleted in changed[i]), 0)
    if deleted.get(current)[0] is not None or deleted.get(values[own])[0] is not None:
        # Deleted now; or its creation was undone already (a restore since is someone else's).
        plan.already.append(deleted)
        return
    plan.undo_create = True
    later = [rows[i][H_ID] for i in range(1, len(rows)) if kinds[i] is OTHER and changed[i]]
    outside = current != values[-1]
    if later or outside or tbl.rtype.irreversible:
        now = deleted.get(current)
        plan.conflicts.append(
            Conflict(deleted, None, deleted.get(values[0]), now, later, outside, tbl.rtype.irreversible)
        )
    else:
        plan.reverts[deleted] = None  # filled in when written: deleted now, by whom, why


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    # Planning allocates hundreds of thousands of small tuples (rows), none in a
    # reference cycle; the cyclic collector kept scanning them and cost ~40% of the
    # planning time (measured on 10,000 records). Collected as usual afterwards.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
