"""Reading changes, runs and workflows for pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from undo import registry
from undo import selectors as undo_selectors
from undo.selectors import Write

from ..lifecycle import WAITING, WRITTEN
from ..models import Change, ChangeTarget, Event, Run, Workflow

S = Change.Status


@dataclass(frozen=True)
class Described:
    """A change with its plain-language sentences (one per record)."""

    change: Change
    sentences: list[str]


def describe(changes: list[Change]) -> list[Described]:
    """Plain-language sentences for each change, loading the records in one query per record type."""
    wanted: dict[str, set[int]] = {}
    for change in changes:
        wanted.setdefault(change.record_type, set()).update(change.record_ids)
    records = {name: registry.get(name).queryset().in_bulk(ids) for name, ids in wanted.items()}
    written = writes(changes)
    described = []
    for change in changes:
        rtype = registry.get(change.record_type)
        values = change.values_to_apply()
        if change.operation == Change.Operation.CREATE:
            sentences = [rtype.describe_change(change.operation, None, values)]
        else:
            sentences = []
            for pk in change.record_ids:
                # Once written, the record has moved on: say "from" what the change was written over.
                before = None
                if change.pk in written:
                    write = written[change.pk].get(pk)
                    before = write.before if write else change.expected.get(str(pk))
                sentences.append(
                    rtype.describe_change(change.operation, records[change.record_type].get(pk), values, before=before)
                )
        described.append(Described(change, sentences))
    return described


def writes(changes: list[Change]) -> dict[int, dict[int, Write]]:
    """For the written changes among `changes`: per change id, what it wrote to each record
    (values before and after), from the history rows tagged with it; two queries per record type."""
    wanted: dict[str, list[int]] = {}
    for change in changes:
        if change.status in WRITTEN:
            wanted.setdefault(change.record_type, []).append(change.pk)
    found: dict[int, dict[int, Write]] = {}
    for name, ids in wanted.items():
        by_change = undo_selectors.writes_of_changes(registry.get(name), ids)
        found.update({pk: by_change.get(pk, {}) for pk in ids})
    return found


def workflow_summaries() -> list[dict]:
    """Per workflow: state, waiting review, applied today, failed, held."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    workflows = Workflow.objects.annotate(
        waiting=Count("changes", filter=Q(changes__status__in=WAITING)),
        applied_today=Count("changes", filter=Q(changes__status=S.APPLIED, changes__applied_at__gte=today)),
        failed=Count("changes", filter=Q(changes__status=S.FAILED)),
        held=Count("changes", filter=Q(changes__status=S.HELD)),
    )
    return list(workflows)


def versions(change: Change) -> list[dict]:
    """The agent's proposal and, when a reviewer corrected it, the reviewer's version, field by field."""
    rtype = registry.get(change.record_type)

    def fields(values: dict) -> list[tuple[str, str]]:
        return [(rtype.fields[n].label, rtype.display(n, v)) for n, v in values.items()]

    found = [{"who": f"agent {change.agent}", "fields": fields(change.values)}]
    if change.is_edited:
        who = change.edited_by.get_username() if change.edited_by_id else "a reviewer"
        found.append({"who": f"{who} (reviewer, applied)", "fields": fields(change.edited_values)})
    return found


def changes_on_record(record_type: str, record_id: int, limit: int = 50) -> list[tuple[Change, str]]:
    """The latest changes proposed on one record, newest first, each with what it sets (or set)."""
    rtype = registry.get(record_type)
    targeted = ChangeTarget.objects.filter(record_type=record_type, record_id=record_id).values("change_id")
    # A create targets no record when proposed: the change that made it is on its first snapshot.
    wrote = rtype.model.history.filter(id=record_id, cs_change_id__isnull=False).values("cs_change_id")
    changes = Change.objects.filter(Q(pk__in=targeted) | Q(pk__in=wrote)).select_related("agent", "run", "edited_by")
    found = []
    for change in changes.order_by("-created_at", "-id")[:limit]:
        if change.operation == Change.Operation.SOFT_DELETE:
            what = "delete it (soft delete)"
        elif change.operation == Change.Operation.CREATE:
            said = rtype.describe_change(change.operation, None, change.values_to_apply())
            what = said[0].lower() + said[1:]  # "create a ticket with customer #1, subject …"
        else:
            what = "set " + ", ".join(
                f"the {rtype.fields[n].label} to {rtype.display(n, v)}" for n, v in change.values_to_apply().items()
            )
        if change.is_edited:
            who = change.edited_by.get_username() if change.edited_by_id else "a reviewer"
            what += f" (corrected by {who})"
        found.append((change, what))
    return found


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    n: int
    show: str  # the run page's filter that lists them


def run_counts(run: Run) -> list[StatusCount]:
    """The run's changes counted by status, in the lifecycle's order, each with its filter."""
    found = dict(run.changes.values_list("status").annotate(n=Count("id")).order_by())
    return [StatusCount(s, S(s).label, found[s], _filter_of(s)) for s in S.values if s in found]


def _filter_of(status: str) -> str:
    return next(key for key, (_, statuses) in RUN_FILTERS.items() if status in statuses)


# The run page's filters: what changed, what failed, what still waits.
RUN_FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "": ("all", ()),
    "applied": ("applied", (S.APPLIED,)),
    "failed": ("failed", (S.FAILED, S.CONFLICT)),
    # A conflict failed to apply and waits for a reviewer again: it is in both.
    "waiting": (
        "still waiting",
        (S.PROPOSED, S.PENDING_REVIEW, S.CONFLICT, S.AUTO_APPROVED, S.APPROVED, S.HELD, S.QUEUED, S.APPLYING),
    ),
    "undone": ("undone", (S.UNDONE,)),
    "rejected": ("rejected or refused", (S.REJECTED, S.REFUSED)),
}


def run_changes(run: Run, *, show: str = ""):
    """The run's changes in the order they came, narrowed to one of RUN_FILTERS."""
    changes = run.changes.select_related("agent", "run", "workflow").order_by("id")
    statuses = RUN_FILTERS[show][1]
    return changes.filter(status__in=statuses) if statuses else changes


def change_events(change: Change) -> list[Event]:
    return list(change.events.select_related("actor").order_by("created_at", "id"))
