"""Routing: what happens to a fresh proposal.

Placeholder until the rule engine lands: hard gates first (irreversible record
types or fields always need a person), then risk at or above the workflow's
threshold goes to review by the record type's owner group, else auto-apply.
Everything routes through `route()`, so the engine can replace it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from undo import registry

from .models import Change, Workflow


@dataclass(frozen=True)
class Routing:
    decision: str
    review_group: str
    approvals_required: int
    explanation: str


def route(change: Change, workflow: Workflow) -> Routing:
    """Decide auto-apply / review / refuse for `change`, with the reason in plain words."""
    rtype = registry.get(change.record_type)
    if rtype.touches_irreversible(change.values.keys()):
        return Routing(
            Change.Decision.REVIEW,
            rtype.owner_group,
            1,
            f"Held for {rtype.owner_group} review: this changes something that cannot be taken back "
            f"({rtype.label}), so a person always decides.",
        )
    if change.risk >= workflow.review_threshold:
        return Routing(
            Change.Decision.REVIEW,
            rtype.owner_group,
            1,
            f"Held for {rtype.owner_group} review: risk {change.risk:.2f} ≥ {workflow.review_threshold:.2f} "
            f"(the workflow's review threshold).",
        )
    return Routing(
        Change.Decision.AUTO_APPLY,
        "",
        0,
        f"Auto-approved: risk {change.risk:.2f} < {workflow.review_threshold:.2f} (the workflow's review threshold).",
    )
