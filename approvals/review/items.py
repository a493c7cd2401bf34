"""A change as a reviewer reads it: each record from its value now to the proposed one (or, once
written, from what it wrote over to what it set), word diffs for long text, what changed since
the agent looked, other changes waiting on the same record, and the approvals that count.

Used by the review queue (`queue`) and by the change page. One query per record type, plus one
each for approvals, other changes waiting on the same records and what written changes wrote.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from django.db.models import Q
from django.urls import reverse

from undo import registry

from .. import access
from ..lifecycle import WAITING, WRITTEN
from ..models import Approval, Change, ChangeTarget
from ..workflows import selectors

LONG_TEXT = 80


@dataclass(frozen=True)
class FieldView:
    label: str
    current: str
    proposed: str
    agent: str | None  # what the agent proposed, when a reviewer corrected it
    diff: list[tuple[str, str]] | None  # word diff current → proposed, for long text


@dataclass(frozen=True)
class RecordView:
    record_id: int | None
    url: str | None
    sentence: str
    fields: list[FieldView]
    changed_since: list[str]  # fields no longer as the agent saw them, in plain words
    others: list[int]  # other changes waiting on this record


@dataclass
class QueueItem:
    change: Change
    records: list[RecordView]
    approvals: list[Approval]  # those that count now
    approvals_needed: int
    can_decide: bool
    approved_by_me: bool

    @property
    def written(self) -> bool:
        """Applied or undone: its records read as what it wrote over, not as they are now."""
        return self.change.status in WRITTEN

    @property
    def changed_since(self) -> bool:
        return any(r.changed_since for r in self.records)


def review_items(changes: list[Change], *, user) -> list[QueueItem]:
    """The changes as a reviewer reads them; changes need workflow, agent and run loaded."""
    if not changes:
        return []
    records = _records(changes)
    writes = selectors.writes(changes)
    approvals: dict[int, list[Approval]] = {}
    for approval in Approval.objects.filter(change_id__in=[c.pk for c in changes]).select_related("reviewer"):
        approvals.setdefault(approval.change_id, []).append(approval)
    others = _others_waiting(changes)
    items = []
    for change in changes:
        counting = change.current_approvals(approvals.get(change.pk, []))
        mine = any(a.reviewer_id == user.pk for a in counting)
        items.append(
            QueueItem(
                change=change,
                records=_record_views(change, records.get(change.record_type, {}), others, writes.get(change.pk)),
                approvals=counting,
                approvals_needed=max(change.approvals_required, 1),
                can_decide=change.is_waiting and not mine and access.may_review(user, change),
                approved_by_me=mine,
            )
        )
    return items


def _records(changes: list[Change]) -> dict[str, dict]:
    wanted: dict[str, set[int]] = {}
    for change in changes:
        wanted.setdefault(change.record_type, set()).update(change.record_ids)
    return {name: registry.get(name).queryset().in_bulk(ids) for name, ids in wanted.items() if ids}


def _others_waiting(changes: list[Change]) -> dict[tuple[str, int], list[int]]:
    wanted: dict[str, set[int]] = {}
    for change in changes:
        wanted.setdefault(change.record_type, set()).update(change.record_ids)
    where = Q()
    for name, ids in wanted.items():
        if ids:
            where |= Q(record_type=name, record_id__in=ids)
    if not where:
        return {}
    found: dict[tuple[str, int], list[int]] = {}
    rows = ChangeTarget.objects.filter(where, change__status__in_constants=WAITING).order_by("change_id")
    for record_type, record_id, change_id in rows.values_list("record_type", "record_id", "change_id")[:5000]:
        found.setdefault((record_type, record_id), []).append(change_id)
    return found


def _record_views(change: Change, loaded: dict, others: dict, written: dict | None = None) -> list[RecordView]:
    """Each record as the reviewer checks it: from its value now to the proposed one; a written
    change (`written`: its writes by record id) from the value it wrote over to the value it set."""
    rtype = registry.get(change.record_type)
    values = change.values_to_apply()

    def agent_said(name):
        return rtype.display(name, change.values.get(name)) if change.is_edited else None

    if change.operation == Change.Operation.CREATE:
        fields = [
            FieldView(rtype.fields[n].label, "(new)", rtype.display(n, v), agent_said(n), None)
            for n, v in values.items()
        ]
        made = change.applied_record_ids[0] if change.applied_record_ids else None
        url = reverse("record_detail", args=[rtype.name, made]) if made else None
        return [RecordView(made, url, rtype.describe_change("create", None, values), fields, [], [])]
    views = []
    for pk in change.record_ids:
        instance = loaded.get(pk)
        seen = change.expected.get(str(pk), {})
        if written is not None:
            write = written.get(pk)
            # A snapshot missing (history pruned): what the agent saw is what the write was checked against.
            before = {n: (write.before if write else seen).get(n) for n in values}
            after = {n: write.after.get(n, v) for n, v in values.items()} if write else values
        else:
            now = rtype.current_values(instance, values) if instance is not None else {}
            before, after = now, values
        fields = [
            FieldView(
                rtype.fields[n].label,
                rtype.display(n, before.get(n)),
                rtype.display(n, v),
                agent_said(n),
                _diff(before.get(n), v),
            )
            for n, v in after.items()
        ]
        changed = []
        if change.is_waiting and instance is not None:
            current = rtype.current_values(instance, seen)
            changed = [
                f"its {rtype.fields[n].label} is now {rtype.display(n, current[n])}; "
                f"the agent saw {rtype.display(n, want)}"
                for n, want in seen.items()
                if current[n] != want
            ]
        views.append(
            RecordView(
                pk,
                reverse("record_detail", args=[rtype.name, pk]),
                rtype.describe_change(
                    change.operation, instance, after, before=before if written is not None else None
                ),
                fields,
                changed,
                [c for c in others.get((change.record_type, pk), []) if c != change.pk],
            )
        )
    return views


def _diff(old, new) -> list[tuple[str, str]] | None:
    """Word-level differences for long text: [("same"|"del"|"ins", text), ...]; None for short values."""
    if not isinstance(new, str) or not isinstance(old, str | None):
        return None
    old = old or ""
    if max(len(old), len(new)) < LONG_TEXT and "\n" not in old + new:
        return None
    a, b = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    parts = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            parts.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            parts.append(("ins", "".join(b[j1:j2])))
    return parts
