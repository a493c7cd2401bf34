"""Intake: checking and storing the changes agents propose.

Nothing is stored unless the whole request is valid. The operation id makes a
proposal idempotent: the same id with the same body returns the change already
stored; the same id with another body is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from undo import registry

from .. import lifecycle, rules
from ..apply.services import enqueue_apply
from ..models import Agent, Change, Run, Workflow
from .errors import shorten


class ProposalError(Exception):
    """Bad input: `status` is the HTTP status, `loc` the path of the offending field."""

    def __init__(self, status: int, loc: list, message: str):
        self.status = status
        self.loc = [shorten(part) for part in loc]
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Proposal:
    """One proposed change as an agent sent it (already shape-checked by the API schema)."""

    operation_id: str
    record_type: str
    operation: str
    records: list[dict[str, Any]]
    values: dict[str, Any]
    risk: float
    confidence: float
    reasoning: str

    @classmethod
    def from_dict(cls, item: dict) -> Proposal:
        return cls(**{f: item[f] for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Checked:
    """One proposal on its way in, checked: what it becomes once stored, and where it sat in the
    request (`loc`, for error messages). One per proposal from checking to storing."""

    proposal: Proposal
    loc: list
    body_hash: str
    values: dict[str, Any]
    record_ids: list[int]
    expected: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Stored:
    change: Change
    created: bool


def propose(
    *, agent: Agent, workflow_name: str, run_external_id: str, proposals: list[Proposal], loc: list
) -> tuple[Run, list[Stored]]:
    """Check, route and store proposals into a run (created on first use); enqueue what is approved.

    `loc` is where the proposals sit in the request, for error messages.
    Raises ProposalError (stores nothing) on the first problem found.
    """
    workflow = _workflow_for(agent, workflow_name)
    checked = [
        _check(agent, p, ["body", *loc, i] if loc else ["body"], _body_hash(workflow_name, run_external_id, p))
        for i, p in enumerate(proposals)
    ]
    _check_references(checked)
    records = _load_records(checked)
    try:
        return _store(agent, workflow, run_external_id, checked, records)
    except IntegrityError:
        # Another request stored the same operation id (or run) between our read
        # and our insert (PostgreSQL; SQLite serialises writers). Read again.
        return _store(agent, workflow, run_external_id, checked, records)


def _workflow_for(agent: Agent, workflow_name: str) -> Workflow:
    workflow = Workflow.objects.filter(name=workflow_name).first()
    if workflow is None:
        raise ProposalError(422, ["body", "workflow"], f"There is no workflow named {workflow_name!r}.")
    if not agent.workflows.filter(pk=workflow.pk).exists():
        raise ProposalError(403, ["body", "workflow"], f"Agent {agent} may not propose for workflow {workflow.name!r}.")
    return workflow


def _check(agent: Agent, p: Proposal, loc: list, body_hash: str) -> Checked:
    try:
        rtype = registry.get(p.record_type)
    except KeyError:
        known = ", ".join(r.name for r in registry.all_record_types())
        raise ProposalError(
            422, [*loc, "record_type"], f"Unknown record type {p.record_type!r} (known: {known})."
        ) from None
    if not agent.may_propose_for(p.record_type):
        raise ProposalError(
            403, [*loc, "record_type"], f"Agent {agent} may not propose changes to {rtype.label} records."
        )

    try:
        values = rtype.clean_values(p.values, references=False)
    except registry.KeyedInvalid as exc:
        raise ProposalError(422, [*loc, "values", exc.key], f"{shorten(exc.key)}: {exc}") from None

    record_ids = [r["id"] for r in p.records]
    if len(set(record_ids)) != len(record_ids):
        raise ProposalError(422, [*loc, "records"], "A record is listed twice.")
    if p.operation == Change.Operation.CREATE:
        if not rtype.creatable:
            raise ProposalError(422, [*loc, "operation"], f"Agents may not create {rtype.label} records.")
        if record_ids:
            raise ProposalError(422, [*loc, "records"], "A create names no existing records.")
        missing = [f for f in rtype.required_on_create if f not in values]
        if missing:
            raise ProposalError(422, [*loc, "values", missing[0]], f"{missing[0]}: required to create a {rtype.label}.")
        return Checked(p, loc, body_hash, values, [], {})

    if not record_ids:
        raise ProposalError(422, [*loc, "records"], f"Name at least one {rtype.label} record to {p.operation}.")
    if p.operation == Change.Operation.SOFT_DELETE:
        if not rtype.soft_deletable:
            raise ProposalError(422, [*loc, "operation"], f"{rtype.label} records cannot be deleted by agents.")
        if values:
            raise ProposalError(422, [*loc, "values"], "A soft delete carries no values.")
    elif not values:
        raise ProposalError(422, [*loc, "values"], "An update must change at least one field.")

    expected = {}
    for i, record in enumerate(p.records):
        seen = record.get("expected") or {}
        missing = [f for f in values if f not in seen]
        if missing:
            raise ProposalError(
                422,
                [*loc, "records", i, "expected", missing[0]],
                f"{missing[0]}: the value the agent saw before proposing is required (expected state).",
            )
        try:
            expected[str(record["id"])] = rtype.clean_values(seen, seen=True)
        except registry.KeyedInvalid as exc:
            raise ProposalError(422, [*loc, "records", i, "expected", exc.key], f"{shorten(exc.key)}: {exc}") from None
    return Checked(p, loc, body_hash, values, record_ids, expected)


def _check_references(checked: list[Checked]) -> None:
    """Check the records that proposed values refer to exist: one query per foreign key, not per proposal."""
    by_type: dict[str, list[int]] = {}
    for i, c in enumerate(checked):
        if c.values:
            by_type.setdefault(c.proposal.record_type, []).append(i)
    errors = {}
    for name, positions in by_type.items():
        missing = registry.get(name).missing_references([checked[i].values for i in positions])
        errors.update({positions[j]: error for j, error in missing.items()})
    if errors:
        i = min(errors)
        raise ProposalError(422, [*checked[i].loc, "values", errors[i].key], f"{errors[i].key}: {errors[i]}")


def _load_records(checked: list[Checked]) -> dict[str, dict[int, dict]]:
    """Check every named record exists and is not deleted, and read the attributes rules use:
    one query per record type."""
    wanted: dict[str, set[int]] = {}
    for c in checked:
        if c.record_ids:
            wanted.setdefault(c.proposal.record_type, set()).update(c.record_ids)
    loaded = {}
    for name, ids in wanted.items():
        found, deleted = registry.get(name).read_attributes(ids)
        loaded[name] = found
        if len(found) == len(ids) and not deleted:
            continue
        for c in checked:
            for j, pk in enumerate(c.record_ids):
                if c.proposal.record_type != name or (pk in found and pk not in deleted):
                    continue
                where = [*c.loc, "records", j, "id"]
                if pk not in found:
                    raise ProposalError(422, where, f"There is no {name} with id {pk}.")
                label = registry.get(name).label
                if c.proposal.operation == Change.Operation.SOFT_DELETE:
                    raise ProposalError(422, where, f"{label.capitalize()} #{pk} is already deleted.")
                raise ProposalError(
                    422, where, f"{label.capitalize()} #{pk} was deleted; it can be changed again once restored."
                )
    return loaded


def _body_hash(workflow_name: str, run_external_id: str, p: Proposal) -> str:
    body = {"workflow": workflow_name, "run": run_external_id, **p.__dict__}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _store(
    agent: Agent, workflow: Workflow, run_external_id: str, checked: list[Checked], records: dict
) -> tuple[Run, list[Stored]]:
    actor = lifecycle.Actor.of_agent(agent)
    with transaction.atomic():
        run, _ = Run.objects.get_or_create(workflow=workflow, external_id=run_external_id, defaults={"agent": agent})
        if run.agent_id != agent.pk:
            raise ProposalError(409, ["body", "run"], f"Run {run_external_id!r} belongs to another agent.")
        existing = {
            c.operation_id: c
            for c in Change.objects.filter(
                agent=agent, operation_id__in=[c.proposal.operation_id for c in checked]
            ).select_related("rule_set", "default_rule_set")
        }
        fresh: dict[str, Change] = {}
        results: list[tuple[str, bool]] = []
        for c in checked:
            p = c.proposal
            known = existing.get(p.operation_id) or fresh.get(p.operation_id)
            if known is not None:
                if known.body_hash != c.body_hash:
                    raise ProposalError(
                        409,
                        ["body", "operation_id"],
                        f"Operation id {p.operation_id!r} was already used for a different change "
                        f"(change {known.pk or 'in this batch'}); use a new operation id for a new change.",
                    )
                results.append((p.operation_id, known.operation_id in fresh))
                continue
            change = Change(
                run=run,
                workflow=workflow,
                agent=agent,
                operation_id=p.operation_id,
                body_hash=c.body_hash,
                record_type=p.record_type,
                record_ids=c.record_ids,
                operation=p.operation,
                values=c.values,
                expected=c.expected,
                risk=p.risk,
                confidence=p.confidence,
                reasoning=p.reasoning,
            )
            fresh[p.operation_id] = change
            results.append((p.operation_id, True))
        if fresh:
            _route(workflow, list(fresh.values()), records)
            # The state read again in this transaction: a pause that committed since the workflow
            # was read holds these too (and the answer says so), rather than leaving it to the claim.
            paused = bool(lifecycle.paused_workflows([workflow.pk]))
            if paused != workflow.is_paused:
                workflow.refresh_from_db()
            lifecycle.admit(list(fresh.values()), actor=actor, paused=paused)
            queued = [c.pk for c in fresh.values() if c.status == Change.Status.QUEUED]
            if queued:
                enqueue_apply(queued)
    by_id = {**existing, **fresh}
    return run, [Stored(by_id[op], created) for op, created in results]


def _route(workflow: Workflow, changes: list[Change], records: dict[str, dict[int, dict]]) -> None:
    """Route fresh proposals by the workflow's current rules, read once for the batch."""
    active = rules.current_rules(workflow)
    for change, attributes in zip(changes, rules.attributes_by_change(changes, records), strict=True):
        routing = rules.route(change, workflow, attributes=attributes, active=active)
        change.decision = routing.decision
        change.review_group = routing.review_group
        change.approvals_required = routing.approvals_required
        change.decision_explanation = routing.explanation
        change.matched_rules = routing.matched
        change.rule_set = routing.rule_set
        change.default_rule_set = routing.defaults
