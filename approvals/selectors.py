"""Reading changes, runs and workflows for pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from undo import registry

from .models import Change, Event, Run, Workflow

S = Change.Status
REVIEWABLE = (S.PENDING_REVIEW, S.CONFLICT)


@dataclass(frozen=True)
class Described:
    """A change with its plain-language sentences (one per record)."""

    change: Change
    sentences: list[str]


def review_queue(*, user, limit: int = 50) -> list[Change]:
    """Changes waiting for a person in the user's groups, most urgent first."""
    queryset = Change.objects.filter(status__in=REVIEWABLE).select_related("agent", "run", "workflow")
    if not user.is_superuser:
        groups = [g.name for g in user.groups.all()]
        if "reviewers" not in groups:
            queryset = queryset.filter(review_group__in=groups)
    return list(queryset.order_by("-risk", "created_at", "id")[:limit])


def describe(changes: list[Change]) -> list[Described]:
    """Plain-language sentences for each change, loading the records in one query per record type."""
    wanted: dict[str, set[int]] = {}
    for change in changes:
        wanted.setdefault(change.record_type, set()).update(change.record_ids)
    records = {name: registry.get(name).queryset().in_bulk(ids) for name, ids in wanted.items()}
    described = []
    for change in changes:
        rtype = registry.get(change.record_type)
        if change.operation == Change.Operation.CREATE:
            sentences = [rtype.describe_change(change.operation, None, change.values)]
        else:
            # Once written, the record has moved on: say "from" what the change was applied over.
            written = change.status in (S.APPLIED, S.UNDONE)
            sentences = [
                rtype.describe_change(
                    change.operation,
                    records[change.record_type].get(pk),
                    change.values,
                    before=change.expected.get(str(pk)) if written else None,
                )
                for pk in change.record_ids
            ]
        described.append(Described(change, sentences))
    return described


def workflow_summaries() -> list[dict]:
    """Per workflow: state, waiting review, applied today, failed, held."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    workflows = Workflow.objects.annotate(
        waiting=Count("changes", filter=Q(changes__status__in=REVIEWABLE)),
        applied_today=Count("changes", filter=Q(changes__status=S.APPLIED, changes__applied_at__gte=today)),
        failed=Count("changes", filter=Q(changes__status=S.FAILED)),
        held=Count("changes", filter=Q(changes__status=S.HELD)),
    )
    return list(workflows)


def run_counts(run: Run) -> dict[str, int]:
    return dict(run.changes.values_list("status").annotate(n=Count("id")).order_by())


# The run page's filters: what changed, what failed, what still waits.
RUN_FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "": ("all", ()),
    "applied": ("applied", (S.APPLIED,)),
    "failed": ("failed", (S.FAILED, S.CONFLICT)),
    "waiting": (
        "still waiting",
        (S.PROPOSED, S.PENDING_REVIEW, S.AUTO_APPROVED, S.APPROVED, S.HELD, S.QUEUED, S.APPLYING),
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
