"""Rules as data: checking a rule set, reading rules back in plain words, saying what an edit changed.

A rule is {"id", "name", "enabled", "condition", "outcome"}; the outcome is
{"decision": "auto_apply" | "review" | "refuse", "group": "" (the record type's
owner group) or a group name, "approvals": N (reviews only)}.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection

from .conditions import MATCHES, MAX_ROWS, InvalidRow, clean_row
from .wording import condition_text

AUTO_APPLY, REVIEW, REFUSE = "auto_apply", "review", "refuse"
DECISIONS = {AUTO_APPLY: "auto-apply", REVIEW: "review", REFUSE: "refuse"}
MAX_RULES = 100
MAX_APPROVALS = 5


class InvalidRule(ValueError):
    """A rule that cannot be saved; `errors` maps where ("name", "rows.2.value", ...) to a plain message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{where}: {message}" for where, message in errors.items()))


def new_rule_id() -> str:
    return secrets.token_hex(4)


def clean_rule(rule: dict, *, groups: Collection[str] | None = None) -> dict:
    """One rule, checked and normalised; raises InvalidRule. `groups`: the group names a review may name."""
    errors: dict[str, str] = {}
    name = " ".join(str(rule.get("name") or "").split())
    if not name:
        errors["name"] = "Give the rule a name."
    elif len(name) > 100:
        errors["name"] = "Keep the name under 100 characters."
    condition = rule.get("condition") or {}
    rows = _clean_rows(condition.get("rows") or [], errors, depth=0)
    if condition.get("match", "all") not in MATCHES:
        errors["match"] = "Combine rows with “all” or “any”."
    outcome = _clean_outcome(rule.get("outcome") or {}, errors, groups)
    if errors:
        raise InvalidRule(errors)
    rule_id = rule.get("id")
    return {
        "id": rule_id if isinstance(rule_id, str) and re.fullmatch(r"[0-9a-f]{8}", rule_id) else new_rule_id(),
        "name": name,
        "enabled": bool(rule.get("enabled", True)),
        "condition": {"match": condition.get("match", "all"), "rows": rows},
        "outcome": outcome,
    }


def _clean_rows(items: list, errors: dict, *, depth: int, prefix: str = "rows") -> list[dict]:
    rows = []
    if sum(len(i.get("rows", [])) if isinstance(i, dict) else 1 for i in items) > MAX_ROWS:
        errors[prefix] = f"A condition has at most {MAX_ROWS} rows."
        return []
    for i, item in enumerate(items):
        where = f"{prefix}.{i}"
        if not isinstance(item, dict):
            errors[where] = "Not a condition row."
        elif "rows" in item:
            if depth > 0:
                errors[where] = "Groups nest one level deep only."
                continue
            if item.get("match") not in MATCHES:
                errors[f"{where}.match"] = "Combine rows with “all” or “any”."
            if not item["rows"]:
                errors[where] = "An empty group: add a row to it or remove it."
            inner = _clean_rows(item["rows"], errors, depth=1, prefix=f"{where}.rows")
            rows.append({"match": item.get("match"), "rows": inner})
        else:
            try:
                rows.append(clean_row(item))
            except InvalidRow as exc:
                errors[f"{where}.{exc.part}"] = str(exc)
    return rows


def _clean_outcome(outcome: dict, errors: dict, groups: Collection[str] | None) -> dict:
    decision = outcome.get("decision")
    if decision not in DECISIONS:
        errors["decision"] = "Choose auto-apply, review or refuse."
        return {}
    if decision != REVIEW:
        return {"decision": decision, "group": "", "approvals": 0}
    group = str(outcome.get("group") or "").strip()
    if group and groups is not None and group not in groups:
        errors["group"] = f"There is no group named {group!r}."
    approvals = outcome.get("approvals", 1)
    if isinstance(approvals, bool) or not isinstance(approvals, int) or not 1 <= approvals <= MAX_APPROVALS:
        errors["approvals"] = f"A review needs 1 to {MAX_APPROVALS} approvals."
    return {"decision": decision, "group": group, "approvals": approvals}


def clean_rules(rules: list[dict], *, groups: Collection[str] | None = None) -> list[dict]:
    """A whole rule set, checked: every rule, unique names, at most MAX_RULES; raises InvalidRule."""
    if len(rules) > MAX_RULES:
        raise InvalidRule({"rules": f"A rule set has at most {MAX_RULES} rules."})
    cleaned, names, ids = [], set(), set()
    for rule in rules:
        try:
            rule = clean_rule(rule, groups=groups)
        except InvalidRule as exc:
            raise InvalidRule({f"rule '{rule.get('name')}' {k}": v for k, v in exc.errors.items()}) from None
        if rule["name"].casefold() in names:
            raise InvalidRule({"name": f"Another rule is already called '{rule['name']}'."})
        while rule["id"] in ids:
            rule["id"] = new_rule_id()
        names.add(rule["name"].casefold())
        ids.add(rule["id"])
        cleaned.append(rule)
    return cleaned


# Plain words ---------------------------------------------------------------------


def outcome_text(outcome: dict) -> str:
    """ "finance reviews, 2 approvals", "auto-apply", "refuse"."""
    if outcome.get("decision") != REVIEW:
        return DECISIONS.get(outcome.get("decision"), "?")
    group = outcome.get("group") or "the record type's owner group"
    n = outcome.get("approvals", 1)
    return f"{group} reviews, {n} approval{'s' if n != 1 else ''}"


def rule_text(rule: dict) -> str:
    """ "When risk ≥ 0.7 or amount > 100 → finance reviews, 2 approvals"."""
    condition = condition_text(rule["condition"])
    head = "Always" if condition == "always" else f"When {condition}"
    return f"{head} → {outcome_text(rule['outcome'])}"


def describe_edits(old: list[dict], new: list[dict]) -> list[str]:
    """What changed from `old` to `new`, one plain sentence per edit (empty: nothing changed)."""
    before = {r["id"]: r for r in old}
    after = {r["id"]: r for r in new}
    edits = [f"removed rule '{r['name']}'" for r in old if r["id"] not in after]
    for rule in new:
        was = before.get(rule["id"])
        if was is None:
            edits.append(f"added rule '{rule['name']}' ({rule_text(rule)}{'' if rule['enabled'] else ', off'})")
            continue
        if was["name"] != rule["name"]:
            edits.append(f"renamed '{was['name']}' to '{rule['name']}'")
        if was["condition"] != rule["condition"]:
            edits.append(
                f"changed the condition of '{rule['name']}' from “{condition_text(was['condition'])}” "
                f"to “{condition_text(rule['condition'])}”"
            )
        if was["outcome"] != rule["outcome"]:
            edits.append(
                f"changed the outcome of '{rule['name']}' from “{outcome_text(was['outcome'])}” "
                f"to “{outcome_text(rule['outcome'])}”"
            )
        if was["enabled"] != rule["enabled"]:
            edits.append(f"turned {'on' if rule['enabled'] else 'off'} '{rule['name']}'")
    kept_before = [i for i in before if i in after]
    kept_after = [i for i in after if i in before]
    if kept_before != kept_after:
        edits.append("reordered the rules: " + ", ".join(f"'{after[i]['name']}'" for i in after))
    return edits


# Editing one rule in a list (the pages edit one rule at a time) ------------------


def with_rule(rules: list[dict], rule: dict) -> list[dict]:
    """`rules` with `rule` replacing the rule of the same id, or added at the end."""
    if any(r["id"] == rule["id"] for r in rules):
        return [rule if r["id"] == rule["id"] else r for r in rules]
    return [*rules, rule]


def without_rule(rules: list[dict], rule_id: str) -> list[dict]:
    return [r for r in rules if r["id"] != rule_id]


def toggled(rules: list[dict], rule_id: str) -> list[dict]:
    return [{**r, "enabled": not r["enabled"]} if r["id"] == rule_id else r for r in rules]


def moved(rules: list[dict], rule_id: str, by: int) -> list[dict]:
    """`rules` with one rule moved `by` places (negative: earlier), within bounds."""
    ids = [r["id"] for r in rules]
    if rule_id not in ids:
        return rules
    i = ids.index(rule_id)
    j = max(0, min(len(rules) - 1, i + by))
    result = list(rules)
    result.insert(j, result.pop(i))
    return result
