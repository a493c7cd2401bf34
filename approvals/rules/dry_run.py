"""Dry run: replay recent proposals against draft rules, before saving them.

Each proposal is routed again, with the record attributes as they are now, and
compared with the decision it got when it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max, Q
from django.utils import timezone

from ..models import Change, RuleSet, Workflow
from .engine import ActiveRules, attributes_by_change, compile_rules, compiled, decide, facts_of, latest_rule_set
from .ruleset import DECISIONS, REVIEW, clean_rules

LIMIT = 1000
DAYS = 30
EXAMPLES = 3


@dataclass(frozen=True)
class Example:
    change: Change
    before: str
    after: str
    explanation: str


@dataclass
class Shift:
    """Proposals whose outcome would go from `before` to `after` ("auto-apply" → "review")."""

    before: str
    after: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True)
class DryRun:
    replayed: int
    since: datetime
    shifts: list[Shift]

    @property
    def changed(self) -> int:
        return sum(s.count for s in self.shifts)


def dry_run(*, workflow: Workflow | None, rules: list[dict], limit: int = LIMIT, days: int = DAYS) -> DryRun:
    """Route the last `limit` proposals of the last `days` days (whichever are fewer) with draft `rules`
    for `workflow` (None: draft global defaults, replayed on every workflow) and count what would change."""
    since = timezone.now() - timedelta(days=days)
    queryset = Change.objects.filter(created_at__gte=since).exclude(decision="")
    if workflow is not None:
        queryset = queryset.filter(workflow=workflow)
    changes = list(queryset.select_related("agent", "workflow").order_by("-created_at", "-id")[:limit])
    draft = compile_rules(clean_rules(rules), scope="workflow" if workflow else "defaults")
    active_for = _active_rules(workflow, draft, changes)
    shifts: dict[tuple[str, str], Shift] = {}
    for change, attributes in zip(changes, attributes_by_change(changes), strict=True):
        routing = decide(active_for(change), change, facts_of(change, attributes))
        before = _routed(change.decision, change.review_group, change.approvals_required)
        after = _routed(routing.decision, routing.review_group, routing.approvals_required)
        if before == after:
            continue
        key = (_word(change.decision), _word(routing.decision, same=change.decision == routing.decision))
        shift = shifts.setdefault(key, Shift(*key))
        shift.count += 1
        if len(shift.examples) < EXAMPLES:
            shift.examples.append(Example(change, _outcome(*before), _outcome(*after), routing.explanation))
    ordered = sorted(shifts.values(), key=lambda s: -s.count)
    return DryRun(replayed=len(changes), since=since, shifts=ordered)


def _active_rules(workflow: Workflow | None, draft, changes: list[Change]):
    if workflow is not None:
        active = ActiveRules(None, latest_rule_set(None), draft + compiled(latest_rule_set(None)))
        return lambda change: active
    # Draft defaults: each workflow keeps its own current rules, the draft replaces the defaults.
    latest = Workflow.objects.filter(pk__in={c.workflow_id for c in changes}).annotate(v=Max("rule_sets__version"))
    wanted = Q(pk__in=[])
    for w in latest:
        if w.v is not None:
            wanted |= Q(workflow=w, version=w.v)
    by_workflow = {rs.workflow_id: ActiveRules(rs, None, compiled(rs) + draft) for rs in RuleSet.objects.filter(wanted)}
    bare = ActiveRules(None, None, draft)
    return lambda change: by_workflow.get(change.workflow_id, bare)


def _routed(decision: str, group: str, approvals: int) -> tuple[str, str, int]:
    # Only a review has reviewers: a change sent to a group for another reason (a conflict goes
    # back to its record's owners) was still routed to auto-apply, and that is what is compared.
    return (decision, group, approvals) if decision == REVIEW else (decision, "", 0)


def _word(decision: str, *, same: bool = False) -> str:
    word = DECISIONS.get(decision, decision or "?")
    # Review → review counts when the reviewers or the approvals needed change.
    return f"{word} (other reviewers or approvals)" if same and decision == REVIEW else word


def _outcome(decision: str, group: str, approvals: int) -> str:
    if decision != REVIEW:
        return DECISIONS.get(decision, decision)
    return f"{group} review, {approvals} approval{'s' if approvals != 1 else ''}"
