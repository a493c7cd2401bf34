"""Reading the review queue: what waits for whom, most urgent first, a page at a time, in plain words.

A page costs the same number of queries whatever its size: the page itself (keyset
pagination over the `change_waiting` index: no OFFSET, no exact COUNT over the whole
queue), one query per record type on it, and one each for approvals, other changes
waiting on the same records, alike changes and the counts.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from undo import registry

from .. import access
from ..models import RISK_BANDS, WAITING, Agent, Approval, Change, ChangeTarget, Run, Workflow
from ..workflows import selectors

COUNT_CAP = 1000
ALIKE_MIN = 2
LONG_TEXT = 80
AGES = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}
AGE_LABELS = {"1h": "over an hour", "4h": "over 4 hours", "1d": "over a day", "1w": "over a week"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def waiting_for(user) -> QuerySet[Change]:
    """Waiting changes the user may see: their groups' queues, or every queue for reviewers, operators, admins."""
    queryset = Change.objects.filter(status__in_constants=WAITING)
    if not access.sees_all(user):
        queryset = queryset.filter(review_group__in=sorted(access.groups_of(user)))
    return queryset


# Positions and groups ----------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in queue order (risk desc, created_at, id), as it travels in a URL."""

    risk: float
    created_at: datetime
    id: int

    @classmethod
    def of(cls, change: Change) -> Cursor:
        return cls(change.risk, change.created_at, change.pk)

    def encode(self) -> str:
        return f"{self.risk!r}_{(self.created_at - _EPOCH) // timedelta(microseconds=1)}_{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raise ValueError for anything that is not a cursor we made."""
        risk, micros, pk = text.split("_")
        value = float(risk)
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise ValueError("risk out of range")
        return cls(value, _EPOCH + timedelta(microseconds=int(micros)), int(pk))

    def after(self) -> Q:
        # `risk <= r` first: the index range starts at the cursor, so a deep page costs what page 1 costs.
        return Q(risk__lte=self.risk) & (
            Q(risk__lt=self.risk) | Q(created_at__gt=self.created_at) | Q(created_at=self.created_at, id__gt=self.id)
        )

    def before(self) -> Q:
        return Q(risk__gte=self.risk) & (
            Q(risk__gt=self.risk) | Q(created_at__lt=self.created_at) | Q(created_at=self.created_at, id__lt=self.id)
        )


@dataclass(frozen=True)
class Alike:
    """Changes alike: one run, one record type and operation, the same proposed values."""

    run_id: int
    record_type: str
    operation: str
    values_json: str

    @classmethod
    def of(cls, change: Change) -> Alike:
        return cls(change.run_id, change.record_type, change.operation, json.dumps(change.values))

    @property
    def values(self) -> dict:
        return json.loads(self.values_json)

    @property
    def query(self) -> str:
        return urlencode(self.params())

    def params(self) -> dict[str, str]:
        return {
            "run": str(self.run_id),
            "record_type": self.record_type,
            "operation": self.operation,
            "values": self.values_json,
        }

    def matches(self) -> Q:
        # Corrected changes are no longer alike their siblings: they are decided one by one.
        return Q(
            run_id=self.run_id,
            record_type=self.record_type,
            operation=self.operation,
            values=self.values,
            edited_values__isnull=True,
        )


@dataclass(frozen=True)
class QueueFilter:
    workflow: Workflow | None = None
    agent: Agent | None = None
    record_type: str = ""
    risk: str = ""
    age: str = ""
    queue: str = ""
    run: Run | None = None
    alike: Alike | None = None

    def apply(self, queryset: QuerySet[Change], *, now=None) -> QuerySet[Change]:
        if self.workflow:
            queryset = queryset.filter(workflow=self.workflow)
        if self.agent:
            queryset = queryset.filter(agent=self.agent)
        if self.record_type:
            queryset = queryset.filter(record_type=self.record_type)
        if self.risk:
            low, high = RISK_BANDS[self.risk]
            queryset = queryset.filter(risk__gte=low) if low is not None else queryset
            queryset = queryset.filter(risk__lt=high) if high is not None else queryset
        if self.age:
            queryset = queryset.filter(created_at__lte=(now or timezone.now()) - AGES[self.age])
        if self.queue:
            queryset = queryset.filter(review_group=self.queue)
        if self.run:
            queryset = queryset.filter(run=self.run)
        if self.alike:
            queryset = queryset.filter(self.alike.matches())
        return queryset


# What a reviewer reads ----------------------------------------------------------------


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
        return self.change.status in selectors.WRITTEN

    @property
    def changed_since(self) -> bool:
        return any(r.changed_since for r in self.records)


@dataclass
class Group:
    alike: Alike
    count: int
    first: QueueItem
    sentence: str
    can_decide: bool  # some of them wait in a queue the user reviews


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


# The page -----------------------------------------------------------------------------


@dataclass
class QueuePage:
    rows: list[QueueItem | Group]
    items: list[QueueItem]
    next_cursor: str | None
    prev_cursor: str | None
    matching: int  # capped at COUNT_CAP
    queues: list[tuple[str, int]]  # waiting per review group the user sees

    @property
    def matching_capped(self) -> bool:
        return self.matching > COUNT_CAP


def review_page(
    *, user, filters: QueueFilter, size: int, after: Cursor | None = None, before: Cursor | None = None
) -> QueuePage:
    """One page of the queue, most urgent first (risk, then age), with alike changes grouped."""
    visible = waiting_for(user)
    matching = filters.apply(visible)
    queryset = matching.select_related("workflow", "agent", "run", "rule_set__workflow", "default_rule_set")
    if before is not None:
        rows = list(queryset.filter(before.before()).order_by("risk", "-created_at", "-id")[: size + 1])
        more_before, more_after = len(rows) > size, True
        page = rows[:size][::-1]
    else:
        rows = list(
            (queryset.filter(after.after()) if after else queryset).order_by("-risk", "created_at", "id")[: size + 1]
        )
        more_before, more_after = after is not None, len(rows) > size
        page = rows[:size]
    items = review_items(page, user=user)
    return QueuePage(
        rows=items if filters.alike else _group(items, visible, user=user),
        items=items,
        next_cursor=Cursor.of(page[-1]).encode() if page and more_after else None,
        prev_cursor=Cursor.of(page[0]).encode() if page and more_before else None,
        matching=matching.order_by()[: COUNT_CAP + 1].count(),
        queues=list(visible.order_by("review_group").values_list("review_group").annotate(n=Count("*"))),
    )


def _group(items: list[QueueItem], visible: QuerySet[Change], *, user) -> list[QueueItem | Group]:
    """Fold alike changes on the page into one group row, where its most urgent member stands."""
    runs = {i.change.run_id for i in items if not i.change.is_edited}
    counts: dict[Alike, int] = {}
    decidable: dict[Alike, int] = {}
    if runs:
        mine = access.reviewable(user)
        alike = (
            visible.filter(run_id__in=runs, edited_values__isnull=True)
            .values_list("run_id", "record_type", "operation", "values")
            .annotate(n=Count("*"), mine=Count("*") if mine is None else Count("pk", filter=mine))
            .filter(n__gte=ALIKE_MIN)
            .order_by()
        )
        for r, t, o, v, n, m in alike:
            counts[Alike(r, t, o, json.dumps(v))] = n
            decidable[Alike(r, t, o, json.dumps(v))] = m
    rows: list[QueueItem | Group] = []
    shown: set[Alike] = set()
    for item in items:
        key = None if item.change.is_edited else Alike.of(item.change)
        if counts.get(key, 0) < ALIKE_MIN:
            rows.append(item)
        elif key not in shown:
            shown.add(key)
            sentence = describe_group(key, counts[key], item.change.run)
            rows.append(Group(key, counts[key], item, sentence, can_decide=decidable[key] > 0))
    return rows


def describe_group(alike: Alike, count: int, run) -> str:
    """ "37 changes from run r-118 set the status of tickets to resolved" """
    what = registry.get(alike.record_type).describe_alike(alike.operation, alike.values)
    return f"{count} changes from run {run.external_id} {what}"


def alike_changes(*, user, alike: Alike, limit: int) -> list[Change]:
    """The waiting changes of one alike group the user may see, in queue order (at most `limit`)."""
    queryset = (
        waiting_for(user)
        .filter(alike.matches())
        .select_related("workflow", "agent", "run", "rule_set__workflow", "default_rule_set")
    )
    return list(queryset.order_by("-risk", "created_at", "id")[:limit])
