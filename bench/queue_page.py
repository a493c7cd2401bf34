"""Benchmark of the review queue page (see bench/queue).

Fills a separate SQLite database (var/bench-queue.sqlite3) with N waiting changes
spread over 1,000 runs, three workflows and three record types, then requests the
queue through Django's test client: page 1, a deep page (position ~90% down the
queue), a filtered page, one alike group, and a group-scoped reviewer's page 1.
Prints p50/p95 and the queries per page; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = ROOT / "var" / "bench-queue.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "countersign.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"
# Production-like: no debug query log, no debug toolbar-style overhead.
os.environ["DEBUG"] = "False"
os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from approvals.models import Agent, Change, ChangeTarget, Run, Workflow  # noqa: E402
from approvals.review.queue import Cursor  # noqa: E402
from demo.models import Customer, Invoice, Ticket  # noqa: E402


def fill(n: int) -> None:
    rng = random.Random(42)
    reviewers, _ = Group.objects.get_or_create(name="reviewers")
    support, _ = Group.objects.get_or_create(name="support")
    Group.objects.get_or_create(name="finance")
    User.objects.create_user("bench-reviewer", password="x").groups.add(reviewers)
    User.objects.create_user("bench-support", password="x").groups.add(support)
    workflows = [Workflow.objects.create(name=name) for name in ("ticket-triage", "account-sync", "refund-bot")]
    agents = []
    for i, workflow in enumerate(workflows):
        agent = Agent(name=f"bench-bot-{i}", version="1", record_types=["ticket", "customer", "invoice"])
        agent.set_token()
        agent.save()
        agent.workflows.set([workflow])
        agents.append(agent)
    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {i}", billing_email=f"ap@c{i}.example") for i in range(2000)
    )
    tickets = Ticket.objects.bulk_create(
        Ticket(customer=rng.choice(customers), subject=f"Ticket {i}", status="pending") for i in range(20000)
    )
    invoices = Invoice.objects.bulk_create(
        Invoice(customer=rng.choice(customers), amount="100.00") for i in range(5000)
    )
    runs = Run.objects.bulk_create(
        Run(workflow=workflows[i % 3], agent=agents[i % 3], external_id=f"r-{i}") for i in range(1000)
    )
    now = timezone.now()
    batch, made = [], 0
    for i in range(n):
        run = runs[i % len(runs)]
        kind = rng.random()
        if kind < 0.6:
            record, rtype, group = rng.choice(tickets), "ticket", "support"
            values = {"status": "resolved"} if rng.random() < 0.5 else {"tags": f"tag-{rng.randint(1, 400)}"}
            expected = {str(record.pk): {k: (record.status if k == "status" else "") for k in values}}
        elif kind < 0.85:
            record, rtype, group = rng.choice(customers), "customer", "support"
            values = {"billing_email": f"billing-{i}@c.example"}
            expected = {str(record.pk): {"billing_email": record.billing_email}}
        else:
            record, rtype, group = rng.choice(invoices), "invoice", "finance"
            values = {"status": "void"}
            expected = {str(record.pk): {"status": record.status}}
        created = now - timedelta(seconds=rng.randint(0, 7 * 86400))
        batch.append(
            Change(
                run=run,
                workflow_id=run.workflow_id,
                agent_id=run.agent_id,
                operation_id=f"op-{i}",
                body_hash="x",
                record_type=rtype,
                record_ids=[record.pk],
                values=values,
                expected=expected,
                risk=round(rng.random(), 2),
                confidence=round(rng.uniform(0.5, 1), 2),
                reasoning="Bench change. " * 5,
                status="conflict" if rng.random() < 0.02 else "pending_review",
                decision="review",
                decision_explanation=f"Held for {group} review: risk over the workflow's threshold.",
                review_group=group,
                approvals_required=2 if rng.random() < 0.1 else 1,
                created_at=created,
                updated_at=created,
            )
        )
        if len(batch) == 5000 or i == n - 1:
            with transaction.atomic():
                stored = Change.objects.bulk_create(batch)
                ChangeTarget.objects.bulk_create(ChangeTarget.of(stored))
            made += len(batch)
            batch = []
            print(f"  {made:,} changes", end="\r", flush=True)
    print()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def measure(client: Client, url: str, repeat: int) -> dict:
    for _ in range(3):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(int(len(times) * 0.95) - 1, 0)], 1),
        "queries": len(queries.captured_queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="waiting changes (default 100,000)")
    parser.add_argument("--repeat", type=int, default=40, help="timed requests per page (default 40)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the database even if it has N changes")
    args = parser.parse_args()

    if args.fresh and DB.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DB}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    if Change.objects.count() != args.n:
        if Change.objects.exists():
            sys.exit(f"{DB} holds another size of queue: run with --fresh")
        print(f"Filling {DB.name} with {args.n:,} waiting changes ...")
        fill(args.n)

    reviewer = Client()
    reviewer.force_login(User.objects.get(username="bench-reviewer"))
    support = Client()
    support.force_login(User.objects.get(username="bench-support"))
    order = Change.objects.filter(status__in=("pending_review", "conflict")).order_by("-risk", "created_at", "id")
    deep = Cursor.of(order.only("risk", "created_at", "id")[int(args.n * 0.9)]).encode()
    run = Run.objects.get(external_id="r-118")
    group = f"run={run.pk}&record_type=ticket&operation=update&values=%7B%22status%22%3A+%22resolved%22%7D"
    pages = {
        "page 1": (reviewer, "/review/"),
        "deep page (90%)": (reviewer, f"/review/?after={deep}"),
        "filtered (workflow, ticket, high risk)": (
            reviewer,
            "/review/?workflow=ticket-triage&record_type=ticket&risk=high",
        ),
        "filtered, deep": (reviewer, f"/review/?workflow=ticket-triage&after={deep}"),
        "one alike group": (reviewer, f"/review/?{group}"),
        "support reviewer, page 1": (support, "/review/"),
        "page 1, 100 a page": (reviewer, "/review/?size=100"),
    }
    results = {name: measure(client, url, args.repeat) for name, (client, url) in pages.items()}
    size_10 = measure(reviewer, "/review/?size=10", 3)["queries"]

    print(f"\nReview queue on {args.n:,} waiting changes (SQLite, Django test client, {args.repeat} requests each)")
    print(f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for name, r in results.items():
        print(f"{name:42} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['queries']:>8}")
    print(f"queries with 10 a page: {size_10}; with 100 a page: {results['page 1, 100 a page']['queries']}")
    print("(queries include the session and user lookups of the login)")
    # The target (p95 <= 150 ms) is for the default page size; 100 a page is shown for information.
    default = {name: r for name, r in results.items() if "100 a page" not in name}
    worst = max(r["p95_ms"] for r in default.values())
    print(f"worst p95 at the default page size: {worst} ms (target 150 ms)")
    print(json.dumps({"p95_ms": worst, "queries_per_page": max(r["queries"] for r in default.values())}))


if __name__ == "__main__":
    main()
