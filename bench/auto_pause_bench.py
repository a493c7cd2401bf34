"""Benchmark: what the automatic pause costs the apply path, and what one check costs.

Run from the repository root: `bench/auto_pause`. Everything is measured in this one run, on a
fresh SQLite database under var/bench/ (Django's settings as in production: DEBUG off, WAL,
IMMEDIATE transactions), in one process:

- the window: 10,000 changes applied (and their events: proposed, queued, claimed, applied)
  spread over the last hour, and 1,000 review decisions (900 approvals, 100 rejections);
- apply throughput, as a worker runs it (`apply_changes` over batches of APPLY_BATCH_SIZE), with
  the automatic pause enabled (thresholds set high, so it never trips: every check runs to the
  end) and disabled, in alternating rounds of ROUND_CHANGES changes each; the ratio is the median
  of the pairs' ratios, each pair measured back to back;
- one check, in µs (median of CHECK_REPEATS): after an apply batch (failures, burst, same value),
  after a review decision (rejections), after an undo (undos), and the page's readings of all five;
  then again with the whole window inside the last 10 minutes (the same-value window), the worst case;
- the query plans of one check, to show each query is an index range;
- intake runs no check: counted, while lifecycle.admit stores a batch of 1,000 proposals.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "auto_pause.sqlite3"
BACKDROP = 10_000
DECISIONS = 1_000
ROUND_CHANGES = 1_000
PAIRS = 10
CHECK_REPEATS = 300
TAGS = ["billing", "login", "refund", "bug", "sales", "shipping", "account", "urgent", "vat", "api"]


def setup_django() -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{DB_PATH}",
            "DEBUG": "False",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
            "DJANGO_SETTINGS_MODULE": "countersign.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    # Nothing is handed to a broker: the bench applies by calling the workers' service itself, and
    # a publisher thread applying beside the timed rounds would take the database from them.
    from countersign.outbox import dispatcher

    dispatcher.publish_soon = lambda dispatches: None


def admit(agent, workflow, run, tickets, decision, start: int):
    from approvals import lifecycle
    from approvals.lifecycle import Actor
    from approvals.models import Change

    changes = [
        Change(
            run=run,
            workflow=workflow,
            agent=agent,
            operation_id=f"op-{start + i}",
            body_hash="-",
            record_type="ticket",
            record_ids=[ticket.pk],
            values={"tags": TAGS[(start + i) % len(TAGS)]},
            expected={},
            risk=0.1,
            confidence=0.9,
            decision=decision,
            review_group="support" if decision == Change.Decision.REVIEW else "",
        )
        for i, ticket in enumerate(tickets)
    ]
    return lifecycle.admit(changes, actor=Actor.of_agent(agent), paused=False)


def apply_all(ids: list[int]) -> float:
    from django.conf import settings

    from approvals.apply.services import apply_changes

    size = settings.APPLY_BATCH_SIZE
    start = time.perf_counter()
    for i in range(0, len(ids), size):
        apply_changes(change_ids=ids[i : i + size])
    return time.perf_counter() - start


def spread(workflow, minutes: int) -> None:
    """Move the workflow's applied changes and their events back over the last `minutes`."""
    from django.utils import timezone

    from approvals.models import Change, Event

    now = timezone.now()
    ids = list(Change.objects.filter(workflow=workflow).order_by("id").values_list("pk", flat=True))
    buckets = 60
    for k in range(buckets):
        mine = ids[k::buckets]
        at = now - timedelta(seconds=(k + 0.5) * minutes * 60 / buckets)
        for start in range(0, len(mine), 500):
            part = mine[start : start + 500]
            Change.objects.filter(pk__in=part, applied_at__isnull=False).update(applied_at=at)
            Event.objects.filter(change_id__in=part).update(created_at=at)


def cost_of_checks(workflow) -> dict[str, float]:
    from approvals.workflows import auto_pause

    batch_fields = {"ticket": {"tags": set(TAGS)}}  # a batch of 200 sets every tag
    cases = {
        "after an apply batch": lambda: auto_pause.check(workflow.pk, auto_pause.AFTER_APPLY, fields=batch_fields),
        "after a review decision": lambda: auto_pause.check(workflow.pk, auto_pause.AFTER_REVIEW),
        "after an undo": lambda: auto_pause.check(workflow.pk, auto_pause.AFTER_UNDO),
        "the page's readings": lambda: auto_pause.readings(workflow),
    }
    out = {}
    for name, call in cases.items():
        assert call() in (None,) or isinstance(call(), list), "the bench's thresholds must never trip"
        times = []
        for _ in range(CHECK_REPEATS):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times) * 1e6
    return out


def query_plans(workflow) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from approvals.workflows import auto_pause

    with CaptureQueriesContext(connection) as queries:
        auto_pause.check(workflow.pk, auto_pause.SIGNALS, fields={"ticket": {"tags": set(TAGS)}})
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
            steps = "; ".join(row[-1] for row in cursor.fetchall())
            plans.append(f"{query['sql'][:70]}… → {steps}")
    return plans


def intake_checks(agent, workflow, run, tickets) -> int:
    """How many automatic-pause checks intake asks for while storing 1,000 proposals."""
    from approvals.models import Change
    from approvals.workflows import auto_pause

    calls = []
    real = auto_pause.check_after_commit
    auto_pause.check_after_commit = lambda *a, **kw: calls.append(a) or real(*a, **kw)
    try:
        admit(agent, workflow, run, tickets, Change.Decision.AUTO_APPLY, start=900_000)
    finally:
        auto_pause.check_after_commit = real
    return len(calls)


def main() -> None:
    began = time.perf_counter()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)
    setup_django()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from simple_history.utils import bulk_create_with_history

    from approvals.models import AutoPause, Change, Run
    from approvals.review import services as review
    from demo.models import Customer, Ticket
    from tests.factories import make_agent, make_workflow

    call_command("migrate", verbosity=0)
    reviewer = User.objects.create_user("bench-reviewer")
    reviewer.groups.add(Group.objects.create(name="support"))
    workflow = make_workflow("bench")
    agent = make_agent(workflow, name="tagger", version="1")[0]
    run = Run.objects.create(workflow=workflow, agent=agent, external_id="bench")
    customer = Customer.objects.create(name="Northwind Solar", billing_email="ap@northwind.example")
    n_tickets = BACKDROP + DECISIONS + 2 * PAIRS * ROUND_CHANGES + 1_000
    bulk_create_with_history(
        [Ticket(customer=customer, subject=f"Ticket {i}", status="open") for i in range(n_tickets)], Ticket
    )
    tickets = list(Ticket.objects.order_by("id"))
    # High thresholds: every check reads all its numbers and never trips.
    high = {
        "max_rejection_pct": 100,
        "max_failure_pct": 100,
        "max_undo_pct": 100,
        "max_applied_per_minute": 1_000_000,
        "max_same_value": 1_000_000,
    }
    config = AutoPause.objects.create(workflow=workflow, enabled=False, **high)

    t = time.perf_counter()
    used = 0
    backdrop = admit(agent, workflow, run, tickets[:BACKDROP], Change.Decision.AUTO_APPLY, start=0)
    used += BACKDROP
    apply_all([c.pk for c in backdrop])
    waiting = admit(agent, workflow, run, tickets[used : used + DECISIONS], Change.Decision.REVIEW, start=used)
    used += DECISIONS
    rejected = [c.pk for c in waiting[: DECISIONS // 10]]
    review.reject_many(change_ids=rejected, user=reviewer, reason="wrong tag")
    review.approve_many(change_ids=[c.pk for c in waiting[DECISIONS // 10 :]], user=reviewer)
    apply_all(sorted(Change.objects.filter(status=Change.Status.QUEUED).values_list("pk", flat=True)))
    spread(workflow, minutes=60)
    print(
        f"window: {Change.objects.filter(applied_at__isnull=False).count():,} applied changes and "
        f"{DECISIONS:,} review decisions over the last hour (built in {time.perf_counter() - t:.1f} s)"
    )

    # One check, over this window, then with all of it in the last 10 minutes (the same-value window).
    AutoPause.objects.filter(pk=config.pk).update(enabled=True)
    spread_costs = cost_of_checks(workflow)
    spread(workflow, minutes=10)
    worst_costs = cost_of_checks(workflow)
    spread(workflow, minutes=60)

    rounds: dict[bool, list[float]] = {True: [], False: []}
    for pair in range(PAIRS):
        # Alternating which goes first, so neither always meets the database warmer.
        for enabled in (True, False) if pair % 2 == 0 else (False, True):
            AutoPause.objects.filter(pk=config.pk).update(enabled=enabled)
            changes = admit(
                agent, workflow, run, tickets[used : used + ROUND_CHANGES], Change.Decision.AUTO_APPLY, start=used
            )
            used += ROUND_CHANGES
            rounds[enabled].append(ROUND_CHANGES / apply_all([c.pk for c in changes]))
    # Each round's window has grown by the rounds before it: pairs compare neighbours.
    ratios = [on / off for on, off in zip(rounds[True], rounds[False], strict=True)]
    on, off, ratio = statistics.median(rounds[True]), statistics.median(rounds[False]), statistics.median(ratios)
    assert (
        not Change.objects.filter(status=Change.Status.HELD).exists()
        and not workflow.events.filter(kind="paused").exists()
    ), "the automatic pause must not trip in the bench"
    print(f"apply, automatic pause enabled, changes/s per round: {', '.join(f'{r:,.0f}' for r in rounds[True])}")
    print(f"apply, automatic pause disabled, changes/s per round: {', '.join(f'{r:,.0f}' for r in rounds[False])}")
    print(
        f"apply throughput: enabled {on:,.0f}/s, disabled {off:,.0f}/s; enabled/disabled "
        f"{ratio:.3f} (median of {PAIRS} back-to-back pairs: {', '.join(f'{r:.3f}' for r in ratios)})"
    )

    batch_s = settings_batch() / off
    for label, costs in (
        ("window spread over the hour", spread_costs),
        ("all of it in the last 10 minutes", worst_costs),
    ):
        print(f"one check, {label} (median of {CHECK_REPEATS}):")
        for name, us in costs.items():
            print(f"  {name}: {us:,.0f} µs")
    apply_check = spread_costs["after an apply batch"]
    worst_share = worst_costs["after an apply batch"] / 1e6 / batch_s
    print(
        f"an apply batch of {settings_batch()} takes {batch_s * 1000:.0f} ms; its check {apply_check / 1000:.2f} ms "
        f"({100 * apply_check / 1e6 / batch_s:.2f}%; worst case {100 * worst_share:.2f}%)"
    )
    print("the queries of one check of all five signals, and their plans:")
    for plan in query_plans(workflow):
        print(f"  {plan}")
    calls = intake_checks(agent, workflow, run, tickets[used : used + 1_000])
    print(f"intake runs no check: {calls} automatic-pause checks asked for while 1,000 proposals were stored")
    print(f"whole bench: {time.perf_counter() - began:.0f} s")
    print(
        json.dumps(
            {
                "apply_per_s_enabled": round(on),
                "apply_per_s_disabled": round(off),
                "ratio_enabled_vs_disabled": round(ratio, 3),
                "check_after_apply_us": round(apply_check),
                "check_after_review_us": round(spread_costs["after a review decision"]),
                "check_after_undo_us": round(spread_costs["after an undo"]),
                "readings_us": round(spread_costs["the page's readings"]),
                "check_after_apply_us_worst": round(worst_costs["after an apply batch"]),
                "check_share_of_apply_batch": round(apply_check / 1e6 / batch_s, 4),
                "intake_checks": calls,
            }
        )
    )


def settings_batch() -> int:
    from django.conf import settings

    return settings.APPLY_BATCH_SIZE


if __name__ == "__main__":
    main()
