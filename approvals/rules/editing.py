"""Saving rules: every save is a new, immutable version with an audit event in plain words."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from .. import audit
from ..models import Event, RuleSet, Workflow
from .engine import latest_rule_set
from .ruleset import clean_rules, describe_edits


class StaleRules(Exception):
    """Someone saved another version since the editor was opened; nothing was saved."""

    def __init__(self, latest: RuleSet | None):
        self.latest = latest
        who = latest.created_by.get_username() if latest and latest.created_by_id else "someone"
        version = latest.version if latest else 0
        super().__init__(
            f"{who} saved version {version} of these rules while you were editing; nothing was saved. "
            "Reload the rules and make your edit again."
        )


def group_names() -> set[str]:
    """The groups a review may name."""
    return set(Group.objects.values_list("name", flat=True))


def save_rules(
    *,
    workflow: Workflow | None,
    rules: list[dict],
    user=None,
    actor_label: str = "",
    base_version: int | None = None,
) -> RuleSet | None:
    """Check `rules` and save them as the next version of `workflow`'s rules (None: the global defaults).

    Returns the new version, or None if nothing changed. Raises InvalidRule, or
    StaleRules when `base_version` is no longer the current version.
    """
    cleaned = clean_rules(rules, groups=group_names())
    scope = f"the rules of {workflow.name}" if workflow else "the global default rules"
    actor = user.get_username() if user is not None else (actor_label or "system")
    try:
        with transaction.atomic():
            latest = latest_rule_set(workflow)
            current = latest.version if latest else 0
            if base_version is not None and base_version != current:
                raise StaleRules(latest)
            edits = describe_edits(latest.rules if latest else [], cleaned)
            if not edits:
                return None
            rule_set = RuleSet.objects.create(
                workflow=workflow, version=current + 1, rules=cleaned, summary="; ".join(edits), created_by=user
            )
            v = rule_set.version
            text = (
                f"{actor} changed {scope} (version {v}): {'; '.join(edits)}. "
                f"Next: new proposals are routed by version {v}; changes already routed keep their route."
            )
            audit.write(
                [
                    audit.Entry(
                        Event.Kind.RULES_CHANGED,
                        audit.Actor(label=actor, user=user),
                        text,
                        workflow_id=workflow.pk if workflow else None,
                        details={"rule_set": rule_set.pk, "version": v, "edits": edits},
                    )
                ]
            )
    except IntegrityError:
        # Another save took the same version number between our read and our insert.
        raise StaleRules(latest_rule_set(workflow)) from None
    return rule_set
