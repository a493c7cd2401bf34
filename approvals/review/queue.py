"""Reading the review queue: what waits for whom, most urgent first, a page at a time, in plain words.

A page costs the same number of queries whatever its size: the page itself (keyset
pagination over the `change_waiting` index: no OFFSET, no exact COUNT over the whole
queue), one query per record type on it, and one each for approvals, other changes
waiting on the same records, alike changes and the counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from undo import registry

from .. import access
from ..lifecycle import WAITING
from ..models import RISK_BANDS, Agent, Change, Run, Workflow
from .items import QueueItem, review_items

COUNT_CAP = 1000
ALIKE_MIN = 2
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


# The page -----------------------------------------------------------------------------


@dataclass
class Group:
    alike: Alike
    count: int
    first: QueueItem
    sentence: str
    can_decide: bool  # some of them wait in a queue the user reviews


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
