"""Measure routing: a 20-rule set (the demo's 7 and 13 more) over realistic proposals, one process, one core.

One evaluation is what intake does per proposal once the batch's rules and record
attributes are loaded: build the proposal's facts, test every rule, pick the
most cautious outcome, apply the hard gate and write the explanation.
Run it as `bench/rules`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "countersign.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402

from approvals.models import Agent, Change, Workflow  # noqa: E402
from approvals.rules.engine import ActiveRules, compile_rules, decide, facts_of  # noqa: E402
from approvals.rules.ruleset import clean_rules  # noqa: E402
from demo.management.commands.seed_demo import DEFAULT_RULES, WORKFLOW_RULES  # noqa: E402


def rule(name, match, rows, decision="review", group="", approvals=1):
    return {
        "name": name,
        "enabled": True,
        "condition": {"match": match, "rows": rows},
        "outcome": {"decision": decision, "group": group, "approvals": approvals},
    }


def row(field, op, value):
    return {"field": field, "op": op, "value": value}


MORE_RULES = [
    rule("night shift", "any", [row("hour", "lt", 6), row("hour", "gte", 22)]),
    rule(
        "closing accounts",
        "all",
        [row("record_type", "is", "customer"), row("value.status", "is", "closed")],
        approvals=2,
    ),
    rule("suspended customers", "all", [row("attr.customer_status", "is", "suspended")]),
    rule(
        "big invoices",
        "all",
        [row("record_type", "is", "invoice"), row("attr.invoice_amount", "gt", 5000)],
        group="finance",
    ),
    rule(
        "voiding invoices",
        "all",
        [row("value.status", "is", "void"), row("record_type", "is", "invoice")],
        group="finance",
        approvals=2,
    ),
    rule("deletes", "all", [row("operation", "is", "soft_delete")]),
    rule("mass changes", "all", [row("records", "gt", 50)], decision="refuse"),
    rule("untested agent", "all", [row("agent_version", "in", ["0.1", "0.2", "beta"])]),
    rule("billing email changes", "all", [row("fields", "any_of", ["billing_email"]), row("confidence", "lt", 0.8)]),
    rule("test agents", "all", [row("agent", "contains", "test")], decision="refuse"),
    rule(
        "bots closing tickets",
        "all",
        [
            row("record_type", "is", "ticket"),
            row("value.status", "in", ["closed", "resolved"]),
            row("confidence", "lt", 0.9),
        ],
    ),
    rule("notes about refunds", "all", [row("value.internal_note", "contains", "refund")], group="finance"),
    rule("renames", "all", [row("fields", "any_of", ["name"])]),
]


def rule_set():
    """The 20 rules, checked like an operator's save, compiled like a saved version."""
    workflow_rules = clean_rules(WORKFLOW_RULES + MORE_RULES)
    defaults = clean_rules(DEFAULT_RULES)
    compiled = compile_rules(workflow_rules, scope="workflow") + compile_rules(defaults, scope="defaults")
    return ActiveRules(None, None, compiled), len(workflow_rules) + len(defaults)


TIERS = (["standard", "vip", "enterprise"], [80, 12, 8])


def proposals(n: int, seed: int = 7) -> list[tuple[Change, list[dict]]]:
    """Realistic proposals with the record attributes intake would load for them."""
    rng = random.Random(seed)
    workflows = [Workflow(name=n) for n in ("ticket-triage", "refund-bot", "account-sync")]
    agents = [
        Agent(name="triage-bot", version="1.4"),
        Agent(name="refund-bot", version="2.0"),
        Agent(name="sync-test", version="0.2"),
    ]
    now = timezone.make_aware(timezone.datetime(2026, 11, 2, 12, 0))  # fixed: the same hours every run
    made = []
    for i in range(n):
        tier = rng.choices(*TIERS)[0]
        kind = rng.choices(
            ["tag", "status", "note", "email", "permission", "customer_status", "invoice", "refund_new", "refund_upd"],
            [45, 15, 10, 10, 3, 2, 8, 5, 2],
        )[0]
        records = rng.choices([1, 2, 5, 60], [90, 6, 3, 1])[0]
        operation, values = "update", {}
        if kind == "tag":
            record_type, values = "ticket", {"tags": rng.choice(["billing", "login", "refund", "bug"])}
        elif kind == "status":
            record_type, values = "ticket", {"status": rng.choice(["pending", "resolved", "closed"])}
        elif kind == "note":
            record_type, values = "ticket", {"internal_note": rng.choice(["Asked for a refund", "Called back", "VIP"])}
        elif kind == "email":
            record_type, values = "customer", {"billing_email": f"ap{i}@example.com"}
        elif kind == "permission":
            record_type, values = "customer", {"permission_level": rng.choice(["viewer", "editor", "admin"])}
        elif kind == "customer_status":
            record_type, values = "customer", {"status": rng.choice(["active", "suspended", "closed"])}
        elif kind == "invoice":
            record_type, values = "invoice", {"status": rng.choice(["paid", "overdue", "void"])}
        elif kind == "refund_new":
            record_type, operation, records = "refund", "create", 0
            values = {"invoice": rng.randint(1, 500), "amount": f"{rng.randint(10, 900)}.00"}
        else:
            record_type, values = "refund", {"status": rng.choice(["issued", "declined"])}
        change = Change(
            workflow=rng.choice(workflows),
            agent=rng.choices(agents, [70, 25, 5])[0],
            record_type=record_type,
            operation=operation,
            record_ids=list(range(i * 100, i * 100 + records)),
            values=values,
            risk=round(rng.betavariate(2, 5), 2),
            confidence=round(rng.betavariate(8, 2), 2),
            created_at=now - timezone.timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
        )
        attributes = [_attributes(rng, record_type, tier) for _ in range(max(records, 1))]
        made.append((change, attributes))
    return made


def _attributes(rng: random.Random, record_type: str, tier: str) -> dict:
    if record_type == "customer":
        return {"customer_tier": tier, "customer_status": rng.choices(["active", "suspended"], [95, 5])[0]}
    if record_type == "ticket":
        return {"ticket_status": "open", "customer_tier": tier}
    if record_type == "invoice":
        amount = rng.randint(15, 9500)
        return {"invoice_status": "sent", "invoice_amount": f"{amount}.00", "customer_tier": tier}
    return {"refund_status": "requested", "refund_amount": f"{rng.randint(10, 900)}.00", "customer_tier": tier}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    active, n_rules = rule_set()
    batch = proposals(args.proposals)
    print(f"rules: {n_rules} ({len(active.rules)} on); proposals: {len(batch)}; passes: {args.repeat}")
    decisions: dict[str, int] = {}
    rates = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for change, attributes in batch:
            decide(active, change, facts_of(change, attributes))
        rates.append(len(batch) / (time.perf_counter() - start))
    for change, attributes in batch:
        routing = decide(active, change, facts_of(change, attributes))
        decisions[routing.decision] = decisions.get(routing.decision, 0) + 1
    print(f"decisions: {decisions}")
    print(f"evaluations/s per pass: {', '.join(f'{r:,.0f}' for r in rates)}")
    print(json.dumps({"evals_per_s": round(statistics.median(rates)), "best_evals_per_s": round(max(rates))}))


if __name__ == "__main__":
    main()
