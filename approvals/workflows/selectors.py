"""Reading changes, runs and workflows for pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, Q
from django.utils import timezone

from undo import registry
from undo import selectors as undo_selectors
from undo.selectors import Write

from .. import access
from ..lifecycle import IN_FLIGHT, RAN, STOPPED, WAITING, WRITTEN
from ..models import Change, ChangeTarget, Event, Run, Workflow
from .services import RUNBOOK_JOBS

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


# A workflow's page ----------------------------------------------------------------------

# The counts at a glance, each a group of statuses. A conflict failed to apply and waits for a
# reviewer again: it is in "failed" and in "waiting for review", as on a run's page.
GLANCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "applied": ("applied", (S.APPLIED,)),
    "in_flight": ("in flight", IN_FLIGHT),
    "held": ("held", (S.HELD,)),
    "waiting": ("waiting for review", WAITING),
    "failed": ("failed", (S.FAILED, S.CONFLICT)),
    "undone": ("undone", (S.UNDONE,)),
}


@dataclass(frozen=True)
class Glance:
    key: str
    label: str
    last_hour: int
    total: int


def workflow_counts(workflow: Workflow) -> list[Glance]:
    """The workflow's changes by where they are, in the last hour and in total: one query. "In
    the last hour" is by the time each change reached its status (`updated_at` moves with it)."""
    hour_ago = timezone.now() - timedelta(hours=1)
    aggregates = {}
    for key, (_, statuses) in GLANCE.items():
        aggregates[f"{key}_total"] = Count("id", filter=Q(status__in=statuses))
        aggregates[f"{key}_hour"] = Count("id", filter=Q(status__in=statuses, updated_at__gte=hour_ago))
    found = Change.objects.filter(workflow=workflow).aggregate(**aggregates)
    return [Glance(key, label, found[f"{key}_hour"], found[f"{key}_total"]) for key, (label, _) in GLANCE.items()]


@dataclass(frozen=True)
class RunLine:
    run: Run
    state: str  # the run's state in a word or two
    counts: list[StatusCount]


RECENT_RUNS = 10


def recent_runs(workflow: Workflow, limit: int = RECENT_RUNS) -> list[RunLine]:
    """The workflow's latest runs, each with its changes counted by status: two queries."""
    runs = list(workflow.runs.select_related("agent").order_by("-started_at", "-id")[:limit])
    by_run: dict[int, dict[str, int]] = {}
    rows = Change.objects.filter(run__in=runs).values_list("run_id", "status").annotate(n=Count("id")).order_by()
    for run_id, status, n in rows:
        by_run.setdefault(run_id, {})[status] = n
    lines = []
    for run in runs:
        found = by_run.get(run.pk, {})
        counts = [StatusCount(s, S(s).label, found[s], _filter_of(s)) for s in S.values if s in found]
        lines.append(RunLine(run, _run_state(found), counts))
    return lines


def _run_state(found: dict[str, int]) -> str:
    if not found:
        return "no changes"
    if found.get(S.HELD):
        return "held (workflow paused)"
    if any(found.get(s) for s in IN_FLIGHT):
        return "applying"
    if any(found.get(s) for s in (*WAITING, S.PROPOSED)):
        return "waiting for review"
    if found.get(S.FAILED):
        return "finished, with failures"
    return "finished"


@dataclass(frozen=True)
class PauseMoment:
    """What was held and in flight when the latest pause was recorded, and where each is now."""

    event: Event
    ran: list[Described]  # written, or tried and failed
    waiting: list[Described]  # not written yet: held, queued, waiting for review …
    stopped: list[Described]  # will not run: rejected or refused since
    counts: dict[str, int]  # "ran", "waiting", "stopped": of all of them, not only those listed
    total: int
    shown: int


PAUSE_MOMENT_SHOWN = 50


def pause_moment(workflow: Workflow, limit: int = PAUSE_MOMENT_SHOWN) -> PauseMoment | None:
    """From the latest `paused` event's details: the changes it held and those a worker had
    claimed, with their status now (the first `limit` of them; `total` counts all)."""
    event = workflow.events.filter(kind=Event.Kind.PAUSED).select_related("actor").order_by("-created_at", "-id")
    event = event.first()
    if event is None:
        return None
    ids = sorted({*event.details.get("held", []), *event.details.get("applying", [])})
    changes = list(Change.objects.filter(pk__in=ids[:limit]).select_related("agent", "run", "workflow").order_by("id"))
    described = describe(changes)
    counts = {"ran": 0, "waiting": 0, "stopped": 0}
    # Counted in slices: a pause may hold tens of thousands, more than SQLite takes in one IN (…).
    for start in range(0, len(ids), _SLICE):
        found = Change.objects.filter(pk__in=ids[start : start + _SLICE]).values_list("status").annotate(n=Count("id"))
        for status, n in found.order_by():
            counts[_where_now(status)] += n
    return PauseMoment(
        event=event,
        ran=[d for d in described if _where_now(d.change.status) == "ran"],
        waiting=[d for d in described if _where_now(d.change.status) == "waiting"],
        stopped=[d for d in described if _where_now(d.change.status) == "stopped"],
        counts=counts,
        total=len(ids),
        shown=len(changes),
    )


_SLICE = 5000


def _where_now(status: str) -> str:
    return "ran" if status in RAN else "stopped" if status in STOPPED else "waiting"


HELD_SHOWN = 50


def held_changes(workflow: Workflow, limit: int = HELD_SHOWN) -> list[Described]:
    """The first changes the workflow holds, oldest first."""
    held = Change.objects.filter(workflow=workflow, status=S.HELD).select_related("agent", "run", "workflow")
    return describe(list(held.order_by("id")[:limit]))


@dataclass(frozen=True)
class Resumption:
    """The latest resume, if it came after the latest pause: how many held changes went where."""

    event: Event
    outcomes: list[tuple[str, int]]


def last_resumption(workflow: Workflow) -> Resumption | None:
    latest = (
        workflow.events.filter(kind__in=(Event.Kind.PAUSED, Event.Kind.RESUMED))
        .select_related("actor")
        .order_by("-created_at", "-id")
        .first()
    )
    if latest is None or latest.kind != Event.Kind.RESUMED:
        return None
    d = latest.details
    outcomes = [
        ("queued for the workers", len(d.get("queued", []))),
        ("sent to review", len(d.get("to_review", []))),
        ("refused by the current rules", len(d.get("refused", []))),
        # Approvals given under rules or record values that changed since: asked again.
        ("asked again (approved under rules or values that changed since)", len(d.get("asked_again", []))),
    ]
    return Resumption(latest, outcomes)


WORKFLOW_EVENTS = 30


def workflow_events(workflow: Workflow, limit: int = WORKFLOW_EVENTS) -> list[Event]:
    """The workflow's own events (pauses, resumes, settings, rules), newest first; each change's
    events are on the change's page."""
    events = workflow.events.filter(change__isnull=True).select_related("actor")
    return list(events.order_by("-created_at", "-id")[:limit])


def record_types_of(workflow: Workflow) -> list[str]:
    """The record types the workflow changes: those its changes were proposed for; before it has
    any, those its agents may propose for (an agent serving several workflows may propose for
    more types than this one ever touches, so its changes are the better answer)."""
    proposed = Change.objects.filter(workflow=workflow).values_list("record_type", flat=True).distinct()
    found = set(proposed.order_by())
    if not found:
        for names in workflow.agents.values_list("record_types", flat=True):
            found.update(names or [])
    return sorted(found)


# The runbook -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunbookJob:
    """One job of the runbook: what it is ("pauses it"), who is named, and whether that person
    can actually do it (`problem` says why not, in plain words)."""

    field: str
    job: str
    person: AbstractBaseUser | None
    ok: bool
    problem: str

    @property
    def sentence(self) -> str:
        return f"{self.person.get_username()} {self.job}" if self.person else f"nobody {self.job}"


def runbook(workflow: Workflow, record_types: list[str] | None = None) -> list[RunbookJob]:
    """The workflow's runbook, each job checked against the permission it needs: pausing needs
    an operator or admin; approving an undo and rerunning need the undo permission on every record
    type it changes (`record_types`: a run's page passes the run's); reading the logs needs to see
    all of its runs."""
    ids = [getattr(workflow, f"{f}_id") for f in RUNBOOK_JOBS]
    people = get_user_model().objects.filter(pk__in=[pk for pk in ids if pk]).prefetch_related("groups")
    people = {u.pk: u for u in people}
    types = record_types_of(workflow) if record_types is None else record_types
    jobs = []
    for (field_name, job), pk in zip(RUNBOOK_JOBS.items(), ids, strict=True):
        person = people.get(pk)
        if person is not None:
            # Groups from the prefetch, so that access reads no more.
            person._countersign_groups = frozenset(g.name for g in person.groups.all())
        problem = _runbook_problem(field_name, job, person, types)
        jobs.append(RunbookJob(field_name, job, person, not problem, problem))
    return jobs


_VERBS = {
    "runbook_pauser": "pause it",
    "runbook_undo_approver": "approve undoing it",
    "runbook_rerunner": "rerun it",
    "runbook_log_reader": "read its logs",
}


def _runbook_problem(field_name: str, job: str, person, types: list[str]) -> str:
    verb = _VERBS[field_name]
    if person is None:
        return f"nobody is named to {verb}"
    who = person.get_username()
    if not person.is_active:
        return f"{who} cannot {verb}: their account is deactivated"
    if field_name == "runbook_pauser":
        return "" if access.may_pause(person) else f"{who} cannot {verb}: not an operator or admin"
    if not types:
        return f"{who} cannot be checked to {verb}: no record types (its agents propose for none)"
    if field_name == "runbook_log_reader":
        if access.sees_all(person) or access.may_undo(person, types):
            return ""
        return f"{who} cannot {verb}: {_missing_groups(person, types)}, nor an operator or reviewer"
    if access.may_undo(person, types):
        return ""
    return f"{who} cannot {verb}: {_missing_groups(person, types)}"


def _missing_groups(person, types: list[str]) -> str:
    """ "not in the support group that owns tickets" (the owner groups of `types` the person is not in)."""
    owned = set(access.owned_record_types(person))
    missing: dict[str, list[str]] = {}
    for name in types:
        if name not in owned:
            rtype = registry.get(name)
            missing.setdefault(rtype.owner_group, []).append(f"{rtype.label}s")
    return "not in " + " nor ".join(f"the {g} group that owns {' and '.join(ts)}" for g, ts in missing.items())


def runbook_line(jobs: list[RunbookJob]) -> str:
    """ "maya pauses it, chris approves undoing it, lee reruns it after a fix, sam reads the logs" """
    return ", ".join(j.sentence for j in jobs)


# The banner ------------------------------------------------------------------------------


def paused_workflows() -> list[Workflow]:
    """Every paused workflow, the longest paused first: one query."""
    fields = ("name", "title", "state", "paused_at", "paused_by_label", "pause_reason")
    return list(Workflow.objects.filter(state=Workflow.State.PAUSED).only(*fields).order_by("paused_at", "name"))
