"""Routing a proposal: its facts, the active rules, the decision and why.

Every enabled rule of the workflow's current rule set, then of the global
defaults, is tested. Among the rules that match, the most cautious wins
(refuse > review > auto-apply; among reviews, more approvals); on a tie, the
first in that order. No rule matching: review by the record type's owner group.
Then the hard gate, which rules cannot lift: an irreversible record type or
field is never auto-applied. (A paused workflow holds what is approved:
`lifecycle.admit` does that.)

Rule sets are compiled once per version and cached by version id: versions
never change, so every process may keep its own cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from undo import registry

from ..models import Change, RuleSet, Workflow
from .conditions import Node, compile_condition
from .fields import NUMBER, Facts, catalogue
from .ruleset import AUTO_APPLY, REFUSE, REVIEW, outcome_text

RANK = {AUTO_APPLY: 1, REVIEW: 2, REFUSE: 3}


@dataclass(frozen=True)
class CompiledRule:
    id: str
    name: str
    outcome: dict
    scope: str  # "workflow" or "defaults"
    version: int
    node: Node
    rank: tuple[int, int]
    outcome_text: str


def compile_rules(rules: list[dict], *, scope: str, version: int = 0) -> tuple[CompiledRule, ...]:
    """The enabled rules of a checked rule set, as closures, in order."""
    return tuple(
        CompiledRule(
            id=rule["id"],
            name=rule["name"],
            outcome=rule["outcome"],
            scope=scope,
            version=version,
            node=compile_condition(rule["condition"]),
            rank=(RANK[rule["outcome"]["decision"]], rule["outcome"].get("approvals", 0)),
            outcome_text=outcome_text(rule["outcome"]),
        )
        for rule in rules
        if rule["enabled"]
    )


_compiled: dict[int, tuple[list[dict], tuple[CompiledRule, ...]]] = {}


def compiled(rule_set: RuleSet | None) -> tuple[CompiledRule, ...]:
    """A saved version's rules, compiled once per process."""
    if rule_set is None:
        return ()
    found = _compiled.get(rule_set.pk)
    # Versions never change, but a rolled-back id can be used again (tests, SQLite): compare the rules too.
    if found is None or found[0] != rule_set.rules:
        if len(_compiled) > 500:
            _compiled.clear()
        scope = "workflow" if rule_set.workflow_id else "defaults"
        found = _compiled[rule_set.pk] = (
            rule_set.rules,
            compile_rules(rule_set.rules, scope=scope, version=rule_set.version),
        )
    return found[1]


@dataclass(frozen=True)
class ActiveRules:
    """What routes a workflow's proposals: its rule set and the defaults, compiled, in order."""

    rule_set: RuleSet | None
    defaults: RuleSet | None
    rules: tuple[CompiledRule, ...]

    @classmethod
    def of(cls, rule_set: RuleSet | None, defaults: RuleSet | None) -> ActiveRules:
        return cls(rule_set, defaults, compiled(rule_set) + compiled(defaults))


def latest_rule_set(workflow: Workflow | None) -> RuleSet | None:
    """The current version of a workflow's rules (None: the global defaults)."""
    queryset = RuleSet.objects.filter(workflow=workflow) if workflow else RuleSet.objects.filter(workflow=None)
    return queryset.select_related("workflow").order_by("-version").first()


def current_rules(workflow: Workflow) -> ActiveRules:
    """The rules routing `workflow`'s proposals now (two queries; call once per batch)."""
    return ActiveRules.of(latest_rule_set(workflow), latest_rule_set(None))


@dataclass(slots=True)
class Routing:
    decision: str
    review_group: str
    approvals_required: int
    explanation: str
    matched: list[dict] = field(default_factory=list)
    rule_set: RuleSet | None = None
    defaults: RuleSet | None = None


def route(
    change: Change, workflow: Workflow, *, attributes: list[dict] | None = None, active: ActiveRules | None = None
) -> Routing:
    """Decide auto-apply / review / refuse for `change`, with the reason in plain words.

    `attributes` are those of the records it touches (see `attributes_by_change`);
    `active` the rules to use (default: the workflow's current ones). Batches pass both.
    """
    if active is None:
        active = current_rules(workflow)
    if attributes is None:
        attributes = attributes_by_change([change])[0]
    return decide(active, change, facts_of(change, attributes))


# Facts ---------------------------------------------------------------------------


def facts_of(change: Change, attributes: list[dict]) -> Facts:
    """What conditions read about a proposal, keyed like the catalogue; numbers as floats."""
    specs = catalogue()
    values = change.values
    facts: Facts = {
        "risk": change.risk,
        "confidence": change.confidence,
        "record_type": change.record_type,
        "operation": change.operation,
        "fields": frozenset(values),
        "records": len(change.record_ids) or (1 if change.operation == Change.Operation.CREATE else 0),
        "agent": change.agent.name,
        "agent_version": change.agent.version,
        "workflow": change.workflow.name,
        # The server's time zone (settings.TIME_ZONE), not whatever a request activated.
        "hour": change.created_at.astimezone(timezone.get_default_timezone()).hour,
    }
    for name, value in values.items():
        spec = specs.get("value." + name)
        if spec is not None and value is not None:
            normal = _normal(spec.kind, value)
            if normal is not None:
                facts[spec.key] = normal
    if attributes:
        seen: dict[str, dict] = {}
        for record in attributes:
            for name, value in record.items():
                if value is not None:
                    seen.setdefault(name, {})[value] = None
        for name, distinct in seen.items():
            spec = specs.get("attr." + name)
            if spec is not None:
                facts[spec.key] = tuple(n for n in (_normal(spec.kind, v) for v in distinct) if n is not None)
    return facts


def _normal(kind: str, value: Any) -> Any:
    if kind != NUMBER:
        return str(value)
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def attributes_by_change(changes: list[Change], loaded: dict[str, dict[int, dict]] | None = None) -> list[list[dict]]:
    """Per change, the attributes of each record it touches (a create: of the record it would make).

    One query per record type (none for types already in `loaded`), plus one per
    foreign key that creates read through; never one per change.
    """
    loaded = dict(loaded or {})
    wanted: dict[str, set[int]] = {}
    creates: dict[str, list[int]] = {}
    for i, change in enumerate(changes):
        if change.operation == Change.Operation.CREATE:
            creates.setdefault(change.record_type, []).append(i)
        else:
            wanted.setdefault(change.record_type, set()).update(change.record_ids)
    for name, ids in wanted.items():
        if name not in loaded:
            loaded[name] = registry.get(name).load_attributes(ids)
    result: list[list[dict]] = [[] for _ in changes]
    for i, change in enumerate(changes):
        if change.operation != Change.Operation.CREATE:
            found = loaded[change.record_type]
            result[i] = [found[pk] for pk in change.record_ids if pk in found]
    for name, indexes in creates.items():
        made = registry.get(name).new_record_attributes([changes[i].values for i in indexes])
        for i, attributes in zip(indexes, made, strict=True):
            result[i] = [attributes]
    return result


# Deciding -------------------------------------------------------------------------


def decide(active: ActiveRules, change: Change, facts: Facts) -> Routing:
    """The most cautious matching rule wins; then the hard gate; explained."""
    rtype = registry.get(change.record_type)
    matches = [rule for rule in active.rules if rule.node.test(facts)]
    winner = max(matches, key=_rank) if matches else None  # max() keeps the first of equals
    if winner is None:
        decision, group, approvals = REVIEW, rtype.owner_group, 1
    else:
        decision = winner.outcome["decision"]
        group = (winner.outcome["group"] or rtype.owner_group) if decision == REVIEW else ""
        approvals = winner.outcome["approvals"] if decision == REVIEW else 0
    matched = [_matched(rule, facts, decided=rule is winner) for rule in matches]

    gate = _gate(rtype, change)
    gated = gate is not None and decision == AUTO_APPLY
    if gated:
        decision, group, approvals = REVIEW, rtype.owner_group, 1
        for entry in matched:
            entry["decided"] = False
    if gate is not None:
        matched.append(
            {
                "rule": None,
                "scope": "gate",
                "outcome": REVIEW,
                "outcome_text": f"{rtype.owner_group} reviews, 1 approval",
                "reasons": [{"field": "record_type", "text": gate}],
                "decided": gated or winner is None,
            }
        )
    return Routing(
        decision=decision,
        review_group=group,
        approvals_required=approvals,
        explanation=_explain(decision, group, approvals, matched),
        matched=matched,
        rule_set=active.rule_set,
        defaults=active.defaults,
    )


def _rank(rule: CompiledRule) -> tuple[int, int]:
    return rule.rank


def _matched(rule: CompiledRule, facts: Facts, *, decided: bool) -> dict:
    return {
        "rule": rule.name,
        "rule_id": rule.id,
        "scope": rule.scope,
        "version": rule.version,
        "outcome": rule.outcome["decision"],
        "outcome_text": rule.outcome_text,
        "reasons": rule.node.reasons(facts),
        "decided": decided,
    }


def _gate(rtype: registry.RecordType, change: Change) -> str | None:
    """Why a person must decide whatever the rules say, or None."""
    if not rtype.touches_irreversible(change.values):
        return None
    if rtype.irreversible:
        return f"a {rtype.label} cannot be taken back once applied"
    labels = [f.label for name, f in rtype.fields.items() if f.irreversible and name in change.values]
    return f"changing the {' and '.join(labels)} of a {rtype.label} cannot be taken back"


def _explain(decision: str, group: str, approvals: int, matched: list[dict]) -> str:
    head = {AUTO_APPLY: "Auto-approved", REFUSE: "Refused", REVIEW: f"Held for {group} review"}[decision]
    if decision == REVIEW and approvals > 1:
        head += f", {approvals} approvals"
    gate = next((m for m in matched if m["scope"] == "gate" and m["decided"]), None)
    rules = [m for m in matched if m["scope"] != "gate"]
    parts = [f"{gate['reasons'][0]['text']}, so a person always decides"] if gate else []
    agreeing = sorted((m for m in rules if m["outcome"] == decision), key=lambda m: not m["decided"])
    parts += [f"{'; '.join(r['text'] for r in m['reasons']) or 'always'} (rule '{m['rule']}')" for m in agreeing]
    if not parts:
        parts = ["no rule matched, so a person decides"]
    text = f"{head}: {'; '.join(parts)}."
    overruled = [m for m in rules if m["outcome"] != decision]
    if overruled:
        text += " Overruled: " + ", ".join(f"'{m['rule']}' ({m['outcome_text']})" for m in overruled) + "."
    return text
