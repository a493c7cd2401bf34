"""The preview of an undo: what it would do, in plain words, before anything is written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Max
from django.urls import reverse

from . import registry, revert
from .chunks import chunks_of
from .models import Undo
from .revert import RecordPlan, no_gc_pauses
from .scopes import NothingToUndo, Scope
from .selectors import UndoneChanges, chain_of, describe_writers, display_slot, redo_targets
from .tables import DELETED


@dataclass
class PreviewItem:
    """One record in the preview, in plain words."""

    key: str
    record_type: str
    record_id: int
    label: str
    url: str
    lines: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # what stays with a change that stays
    already: list[str] = field(default_factory=list)
    cannot: str = ""
    forced: bool = False
    skipped: bool = False
    changed_since_preview: bool = False


@dataclass
class Preview:
    """What an undo would do, before anything is written."""

    scope: Scope
    description: str
    record_types: list[str] = field(default_factory=list)
    changes: int = 0
    records: int = 0
    records_to_write: int = 0
    fields: int = 0  # fields set back, on records that go back (creates aside)
    conflicts: int = 0  # records with at least one conflict
    conflict_fields: int = 0
    held: int = 0  # records where fields stay with a change in conflict elsewhere
    already: int = 0  # records already back entirely
    cannot: int = 0
    creates: int = 0  # records the scope created, to soft-delete (among records_to_write)
    skipped: int = 0  # records the owner chose to leave as they are
    # Per record type, the newest history id before planning: what the preview showed. The
    # confirm form sends it back; the undo reaches no later write, and forces over none.
    seen: dict[str, int] = field(default_factory=dict)
    items: list[PreviewItem] = field(default_factory=list)
    conflict_items: list[PreviewItem] = field(default_factory=list)
    more_items: int = 0
    more_conflicts: int = 0

    @property
    def records_back(self) -> int:
        """Records set back, apart from the created ones removed."""
        return self.records_to_write - self.creates

    @property
    def nothing_to_do(self) -> bool:
        return self.records_to_write == 0 and self.conflicts == 0


def preview_undo(
    *,
    scope: Scope,
    description: str,
    forced: Iterable[str] = (),
    skipped: Iterable[str] = (),
    limit: int = 100,
    target: Undo | None = None,
) -> Preview:
    """Plan the undo of `scope` without writing: counts, per record what goes back, and the conflicts.

    Raises NothingToUndo when the scope matches no write.
    """
    forced, skipped = frozenset(forced), frozenset(skipped)
    preview = Preview(scope=scope, description=description)
    chain = chain_of(scope.key())
    candidates = frozenset(target.change_ids_done) if target else None
    redos = redo_targets()
    undone = None if target else UndoneChanges()
    # Read before the histories are: anything newer was not in this preview.
    newest = {
        rtype.name: rtype.model.history.aggregate(newest=Max("history_id"))["newest"] or 0
        for rtype in registry.all_record_types()
        if scope.history_q(rtype) is not None
    }
    total, chunks = chunks_of(scope, size=settings.UNDO_BATCH_SIZE)
    if not total:
        raise NothingToUndo(f"Nothing to undo: no record was changed by {description}.")
    kept: list[RecordPlan] = []
    kept_conflicts: list[RecordPlan] = []
    changes: set[int] = set()
    for chunk in chunks:
        if chunk.table.rtype.name not in preview.record_types:
            preview.record_types.append(chunk.table.rtype.name)
        with no_gc_pauses():
            plans = revert.plan_chunk(
                chunk,
                chain=chain,
                forced=forced,
                skipped=skipped,
                candidates=candidates,
                redos=redos,
                undone=undone,
            )
        for plan in plans:
            _count(preview, plan, changes)
            if plan.conflicts or plan.cannot or plan.held:
                if len(kept_conflicts) < limit:
                    kept_conflicts.append(plan)
                else:
                    preview.more_conflicts += 1
            elif plan.reverts:
                if len(kept) < limit:
                    kept.append(plan)
                else:
                    preview.more_items += 1
    preview.changes = len(changes)
    preview.seen = {name: newest[name] for name in preview.record_types}
    preview.items = describe_plans(kept)
    preview.conflict_items = describe_plans(kept_conflicts)
    return preview


def _count(preview: Preview, plan: RecordPlan, changes: set[int]) -> None:
    preview.records += 1
    changes.update(plan.change_slots)
    writes = plan.to_write()
    if writes:
        preview.records_to_write += 1
        if plan.undo_create:
            preview.creates += 1  # removed, not set back field by field
        else:
            preview.fields += len(writes)
    if plan.conflicts:
        preview.conflicts += 1
        preview.conflict_fields += len(plan.conflicts)
    if plan.held and not plan.conflicts:
        preview.held += 1
    if plan.skipped:
        preview.skipped += 1
    elif plan.cannot:
        preview.cannot += 1
    elif not plan.conflicts and not plan.reverts and not plan.held:
        preview.already += 1


def describe_plans(plans: list[RecordPlan]) -> list[PreviewItem]:
    """Plain-language lines for each plan: what goes back, what is in conflict and why."""
    by_type: dict[str, list[RecordPlan]] = {}
    for plan in plans:
        by_type.setdefault(plan.table.rtype.name, []).append(plan)
    records = {
        name: registry.get(name).queryset().in_bulk([p.record_id for p in group]) for name, group in by_type.items()
    }
    later_ids: dict[str, set[int]] = {}
    for plan in plans:
        for conflict in plan.conflicts:
            later_ids.setdefault(plan.table.rtype.name, set()).update(conflict.later)
    writers = {name: describe_writers(registry.get(name), ids) for name, ids in later_ids.items()}
    return [_describe(plan, records[plan.table.rtype.name].get(plan.record_id), writers) for plan in plans]


def _describe(plan: RecordPlan, instance, writers: dict) -> PreviewItem:
    rtype = plan.table.rtype
    item = PreviewItem(
        key=plan.key,
        record_type=rtype.name,
        record_id=plan.record_id,
        label=rtype.describe(instance) if instance is not None else f"{rtype.label} #{plan.record_id}",
        url=reverse("record_detail", args=[rtype.name, plan.record_id]),
        cannot=plan.cannot,
        forced=plan.forced,
        skipped=plan.skipped,
        changed_since_preview=plan.changed_since_preview,
    )
    for slot, before in plan.reverts.items():
        item.lines.append(_revert_line(plan, slot, before))
    for conflict in plan.conflicts:
        item.conflicts.append(_conflict_line(plan, conflict, writers.get(rtype.name, {})))
    for slot, change_id in plan.held.items():
        item.held.append(
            f"{slot.label} stays at {display_slot(slot, slot.get(plan.current))} with change #{change_id}: "
            "part of that change stays as it is, and a change goes back whole or not at all"
        )
    item.already = [slot.label for slot in plan.already]
    return item


def _revert_line(plan: RecordPlan, slot, before) -> str:
    now = slot.get(plan.current)
    if slot.name == DELETED:
        if before is None:
            return "delete it (these changes created it; a soft delete: it can be restored)"
        if before[0] is None:
            return f"restore it (now {display_slot(slot, now)})"
        return "delete it again, as it was"
    return f"{slot.label}: {display_slot(slot, now)} → {display_slot(slot, before)}"


def _conflict_line(plan: RecordPlan, conflict, writers: dict) -> str:
    slot = conflict.slot
    rtype = plan.table.rtype
    if conflict.irreversible and not conflict.later and not conflict.outside_history:
        target = "delete it" if conflict.before is None else f"set it back to {display_slot(slot, conflict.before)}"
        what = "the record" if slot.name == DELETED else slot.label
        return (
            f"{what}: what a change to a {rtype.label} did in the world cannot be called back (irreversible), "
            f"so undo leaves it as it is ({display_slot(slot, conflict.current)}). Force to {target} anyway."
        )
    parts = []
    if slot.name == DELETED and conflict.before is None:
        head = "it was created by these changes, and since then"
    else:
        head = f"{slot.label}: these changes set it to {display_slot(slot, conflict.written)}; since then"
    for history_id in conflict.later:
        writer = writers.get(history_id)
        if writer is None:
            continue
        value = display_slot(slot, slot.get(writer.values)) if slot.name != DELETED else ""
        what = f"set it to {value}" if value else "changed it"
        if slot.name == DELETED and conflict.before is None:
            what = "changed it"
        parts.append(f"{writer.who} {what} ({writer.when:%Y-%m-%d %H:%M})")
    if conflict.outside_history:
        parts.append(f"it was changed outside Countersign's history (it is now {display_slot(slot, conflict.current)})")
    return f"{head} {'; '.join(parts)}. Kept as it is unless you force this record."
