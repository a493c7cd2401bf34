"""Undo scopes in the product's words: a change, a run, a selection of a run's changes,
an agent's changes in a time window; and the refusals that need change statuses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count
from django.utils import timezone

from undo import registry
from undo.scopes import Scope
from undo.services import UndoRefused

from ..lifecycle import IN_FLIGHT, WAITING, WRITTEN
from ..models import Agent, Change, Run

S = Change.Status

_NEVER_APPLIED = {
    S.PROPOSED: "it was never applied (it is still being routed)",
    S.PENDING_REVIEW: "it was never applied: it is waiting for review. Reject it instead",
    S.REJECTED: "it was never applied: it was rejected",
    S.REFUSED: "it was never applied: the rules refused it",
    S.HELD: "it was never applied: it is held while its workflow is paused. Reject it instead",
    S.FAILED: "it was never applied: applying it failed, so nothing was written",
    S.CONFLICT: "it was never applied: the record had changed, and it waits for a reviewer",
}


@dataclass(frozen=True)
class UndoScope:
    """What to undo, as undo's scope, with a plain-language description."""

    scope: Scope
    description: str
    workflows: list[str]
    # A whole run's changes not applied yet, which an undo does not touch: still waiting
    # for a reviewer (they would write if approved), and held while the workflow is paused.
    waiting: list[int] = field(default_factory=list)
    held: int = 0


def for_run(run: Run, change_ids: list[int] | None = None) -> UndoScope:
    """The whole run, or the changes of it in `change_ids`. Raises UndoRefused when it cannot be undone now."""
    changes = run.changes.all()
    if change_ids:
        changes = changes.filter(pk__in=change_ids)
        found = set(changes.values_list("pk", flat=True))
        if missing := sorted(set(change_ids) - found):
            what = f"Change {missing[0]} is" if len(missing) == 1 else f"Changes {', '.join(map(str, missing))} are"
            raise UndoRefused(f"{what} not part of {run}; nothing was undone.")
    counts = dict(changes.values_list("status").annotate(n=Count("id")).order_by())
    _refuse_in_flight(counts, f"{run} ({run.workflow})", run.workflow.name)
    if not any(counts.get(s) for s in WRITTEN):
        if change_ids and len(change_ids) == 1:
            change = changes.get()
            raise UndoRefused(f"Nothing to undo: change {change.pk} — {_NEVER_APPLIED[change.status]}.")
        raise UndoRefused(f"Nothing to undo: no change of {run} was applied, so no record was written.")
    if change_ids:
        ids = tuple(sorted(set(change_ids)))
        what = f"change {ids[0]}" if len(ids) == 1 else f"{len(ids)} changes"
        description = f"{what} of run {run.external_id} ({run.workflow}, {run.agent})"
        return UndoScope(Scope(change_ids=ids, run_id=run.pk), description, [run.workflow.name])
    description = f"run {run.external_id} ({run.workflow}, {run.agent})"
    waiting = list(changes.filter(status__in=WAITING).order_by("id").values_list("pk", flat=True))
    return UndoScope(Scope(run_id=run.pk), description, [run.workflow.name], waiting, counts.get(S.HELD, 0))


def for_agent(*, name: str, version: str, since: dt.datetime, until: dt.datetime, record_type: str = "") -> UndoScope:
    """Every change by the agent (one version, or all) written between `since` and `until`,
    to every record type or to one."""
    agents = Agent.objects.filter(name=name)
    if version:
        agents = agents.filter(version=version)
    agents = list(agents)
    if not agents:
        raise UndoRefused(f"No agent {name}{' v' + version if version else ''} is known.")
    changes = Change.objects.filter(agent__in=agents)
    if record_type:
        changes = changes.filter(record_type=record_type)
    in_window = changes.filter(applied_at__gte=since, applied_at__lte=until)
    if until >= timezone.now() - dt.timedelta(minutes=1):
        # The window reaches now: changes still on their way would land inside it.
        flying = changes.filter(status__in=IN_FLIGHT)
        in_flight = dict(flying.values_list("status").annotate(n=Count("id")).order_by())
        workflows = sorted(set(flying.values_list("workflow__name", flat=True)))
        _refuse_in_flight(in_flight, f"{name}{' v' + version if version else ''}", ", ".join(workflows))
    if not in_window.filter(status__in=WRITTEN).exists():
        raise UndoRefused(
            f"Nothing to undo: {name}{' v' + version if version else ''} applied no change between "
            f"{_window(since, until)}."
        )
    who = f"{name} v{version}" if version else f"{name} (every version)"
    to = f" to {registry.get(record_type).label}s" if record_type else ""
    description = f"everything {who} did{to} between {_window(since, until)}"
    scope = Scope(agent_ids=tuple(sorted(a.pk for a in agents)), since=since, until=until, record_type=record_type)
    return UndoScope(scope, description, sorted(set(changes.values_list("workflow__name", flat=True))))


def _refuse_in_flight(counts: dict[str, int], what: str, workflows: str) -> None:
    waiting = sum(counts.get(s, 0) for s in IN_FLIGHT)
    if waiting:
        raise UndoRefused(
            f"{what} is still applying: {waiting} change{'s' if waiting != 1 else ''} approved, queued or being "
            f"applied right now. Wait until they are applied (the run's page shows the counts), or pause the "
            f"workflow ({workflows}) first: then nothing more is applied and the undo can go ahead."
        )


def _window(since: dt.datetime, until: dt.datetime) -> str:
    """'2026-12-01 14:00 and 2026-12-01 16:30'; to the second when both fall in one minute."""
    since, until = timezone.localtime(since), timezone.localtime(until)
    fmt = (
        "%Y-%m-%d %H:%M:%S"
        if since.replace(second=0, microsecond=0) == until.replace(second=0, microsecond=0)
        else "%Y-%m-%d %H:%M"
    )
    return f"{since.strftime(fmt)} and {until.strftime(fmt)}"


def record_types_of_run(run: Run, change_ids: list[int] | None = None) -> list[str]:
    """The record types a run's applied (or undone) changes wrote: their owners may undo it."""
    changes = run.changes.filter(status__in=WRITTEN)
    if change_ids:
        changes = changes.filter(pk__in=change_ids)
    return sorted(set(changes.values_list("record_type", flat=True)))
