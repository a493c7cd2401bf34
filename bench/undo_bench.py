"""Benchmark: undoing a run of 10,000 (and 100,000) applied changes, each editing 2 fields of one ticket.

Run from the repository root: `bench/undo`. Everything is measured in this one run,
on a fresh SQLite database under var/bench/ (Django's settings as in production:
DEBUG off, WAL, IMMEDIATE transactions):

- end to end, as the owner does it: the preview page, the POST that starts the undo,
  then the run page until it shows the undo done. Runs of more than
  UNDO_INLINE_MAX_RECORDS go to Celery; here the task runs eagerly in the web
  process (`task_always_eager`, on the outbox's publisher thread), so the broker hop
  (~1 ms) is not in the figure;
- our execution phase: the undo's own started → finished time (reading history,
  planning, writing records and history rows, marking the changes undone + events);
  the 10k figures are the median of REPEATS runs (each its own 10k scenario);
- the physical limit: in one transaction, raw SQL UPDATEs the same number of rows
  to the same values and INSERTs the same number of history rows, on a twin run.
  Each of the REPEATS pairs is measured back to back in the same process, the raw
  limit just before our undo, so both meet the same moment of this noisy machine;
  `ratio_vs_raw_update` is the median of the pairs' ratios. The stricter figure
  (the best raw time against our median) is printed too;
- the way a user would do it today: simple-history's per-record revert (load the
  previous version, `save()` it) on a sample of records, extrapolated per record;
- each timed section starts after `PRAGMA wal_checkpoint(TRUNCATE)`, so none pays for
  checkpointing the pages of the work before it;
- peak memory: the peak resident set (VmHWM in /proc/self/status, the figure ru_maxrss
  would give for a fresh process) of the process that runs the undo end to end: a fresh
  child process per size, Django loaded, the data built by the parent.
"""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
DB_PATH = BENCH_DIR / "undo.sqlite3"
BASELINE_SAMPLE = 300
REPEATS = 5


def environment() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{DB_PATH}",
        "DEBUG": "False",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
        "DJANGO_SETTINGS_MODULE": "countersign.settings",
        "LOG_LEVEL": "WARNING",
    }


def setup_django() -> None:
    os.environ.update(environment())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# Building the scenarios ---------------------------------------------------------------


def build(n: int, label: str, owner, workflow, agent) -> int:
    """n tickets, each created, then changed on 2 fields by one applied change of one run. Returns the run id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from approvals.models import Change, Run
    from demo.models import Customer

    now = timezone.now()
    now_db = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic():
        customer = Customer.objects.create(name=f"Bench {label}", billing_email="ap@bench.example")
        run = Run.objects.create(workflow=workflow, agent=agent, external_id=f"bench-{label}")
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO demo_ticket (customer_id, subject, status, tags, internal_note, deleted_at, deleted_by,"
                " deleted_reason) VALUES (%s, %s, 'open', '', '', NULL, '', '')",
                [(customer.pk, f"{label}-{i}") for i in range(n)],
            )
            cursor.execute("SELECT id, subject FROM demo_ticket WHERE customer_id = %s ORDER BY id", [customer.pk])
            tickets = cursor.fetchall()
            history = (
                "INSERT INTO demo_historicalticket (id, customer_id, subject, status, tags, internal_note, deleted_at,"
                " deleted_by, deleted_reason, history_date, history_change_reason, history_type, history_user_id,"
                " cs_change_id, cs_run_id, cs_agent_id, cs_agent_label, cs_undo_id)"
                " VALUES (%s, %s, %s, %s, %s, '', NULL, '', '', %s, %s, %s, %s, %s, %s, %s, %s, NULL)"
            )
            cursor.executemany(
                history,
                [
                    (pk, customer.pk, subject, "open", "", now_db, "bench data", "+", None, None, None, None, "")
                    for pk, subject in tickets
                ],
            )
        changes = Change.objects.bulk_create(
            (
                Change(
                    run=run,
                    workflow=workflow,
                    agent=agent,
                    operation_id=f"{label}-{pk}",
                    body_hash="-",
                    record_type="ticket",
                    record_ids=[pk],
                    values={"status": "resolved", "tags": "billing"},
                    expected={str(pk): {"status": "open", "tags": ""}},
                    risk=0.1,
                    confidence=0.9,
                    status=Change.Status.APPLIED,
                    decision=Change.Decision.AUTO_APPLY,
                    approver=owner,
                    applied_record_ids=[pk],
                    applied_at=now,
                )
                for pk, _ in tickets
            ),
            batch_size=2000,
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE demo_ticket SET status = 'resolved', tags = 'billing' WHERE id = %s",
                [(pk,) for pk, _ in tickets],
            )
            reason = f"bench change by {agent}"
            cursor.executemany(
                history,
                [
                    (
                        pk,
                        customer.pk,
                        subject,
                        "resolved",
                        "billing",
                        now_db,
                        reason,
                        "~",
                        owner.pk,
                        c.pk,
                        run.pk,
                        agent.pk,
                        str(agent),
                    )
                    for (pk, subject), c in zip(tickets, changes, strict=True)
                ],
            )
    return run.pk


def raw_limit(run_id: int) -> float:
    """One transaction of plain SQL: UPDATE the records to the values an undo writes, INSERT as many history rows."""
    from django.db import connection, transaction
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, customer_id, subject FROM demo_historicalticket WHERE cs_run_id = %s ORDER BY id", [run_id]
        )
        rows = cursor.fetchall()
    now_db = connection.ops.adapt_datetimefield_value(timezone.now())
    checkpoint()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            "UPDATE demo_ticket SET status = %s, tags = %s WHERE id = %s", [("open", "", r[0]) for r in rows]
        )
        cursor.executemany(
            "INSERT INTO demo_historicalticket (id, customer_id, subject, status, tags, internal_note, deleted_at,"
            " deleted_by, deleted_reason, history_date, history_change_reason, history_type, history_user_id,"
            " cs_change_id, cs_run_id, cs_agent_id, cs_agent_label, cs_undo_id)"
            " VALUES (%s, %s, %s, 'open', '', '', NULL, '', '', %s, 'raw', '~', NULL, NULL, NULL, NULL, '', 1)",
            [(r[0], r[1], r[2], now_db) for r in rows],
        )
    return time.perf_counter() - started


def checkpoint() -> None:
    """Start each measurement with an empty WAL: no timed transaction pays for copying
    earlier transactions' pages back into the database file."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def per_record_revert(run_id: int) -> tuple[float, int]:
    """simple-history's way: for each record, load its previous version and save it. Returns (s per record, n)."""
    from demo.models import Ticket

    ids = list(Ticket.history.filter(cs_run_id=run_id).values_list("id", flat=True).order_by("id")[:BASELINE_SAMPLE])
    checkpoint()
    started = time.perf_counter()
    for pk in ids:
        record = Ticket.all_objects.get(pk=pk)
        previous = record.history.all()[1]  # newest first: [0] is the agent's version
        previous.instance.save()
    return (time.perf_counter() - started) / len(ids), len(ids)


# The undo, end to end, in a fresh process -------------------------------------------


def undo_end_to_end(run_ids: list[int], warm_run_id: int, twin_ids: list[int]) -> list[dict]:
    """Undo each run end to end; with a twin given, measure the raw limit on it just before."""
    from django.contrib.auth.models import User
    from django.test import Client

    from countersign.celery import app

    app.conf.task_always_eager = True
    app.loader.import_default_modules()  # the tasks, so the outbox runs them eagerly rather than send them by name
    _time_change_bookkeeping()
    client = Client()
    client.force_login(User.objects.get(username="bench-owner"))
    # Warm up as a running server is warm: one whole undo of a small run first (URL
    # resolver, compiled templates, Celery's first task, the ORM's caches).
    client.get(f"/runs/{warm_run_id}/undo")
    client.post(f"/runs/{warm_run_id}/undo")
    client.get(f"/runs/{warm_run_id}/")
    results = []
    for i, run_id in enumerate(run_ids):
        raw_s = raw_limit(twin_ids[i]) if i < len(twin_ids) else None
        results.append({**_one_undo(client, run_id), "raw_s": raw_s})
    return results


def _time_change_bookkeeping() -> None:
    """Measure, inside the execution, the approvals side: changes' statuses and their events."""
    from approvals import lifecycle

    real = lifecycle.transition_many

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            BOOKKEEPING.append(time.perf_counter() - started)

    lifecycle.transition_many = timed


BOOKKEEPING: list[float] = []


def _one_undo(client, run_id: int) -> dict:
    from undo.models import Undo

    checkpoint()
    BOOKKEEPING.clear()
    started = time.perf_counter()
    preview = client.get(f"/runs/{run_id}/undo")
    assert preview.status_code == 200, preview.content[:2000]
    preview_s = time.perf_counter() - started
    # Confirm as the page's form does: with the preview's hidden fields (what it showed).
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', preview.content.decode())
    response = client.post(f"/runs/{run_id}/undo", dict(hidden))
    assert response.status_code == 302, response.content[:2000]
    # The outbox runs the eager task in its publisher thread, as a worker would run it beside
    # the web process: wait with a one-row query, not by rendering the run page every 20 ms
    # (in one process, those renders would take the GIL and the database from the undo).
    finished = (Undo.Status.DONE, Undo.Status.FAILED)
    while Undo.objects.filter(run_id=run_id).order_by("-id").values_list("status", flat=True).first() not in finished:
        time.sleep(0.02)
    page = client.get(f"/runs/{run_id}/").content.decode()
    elapsed = time.perf_counter() - started
    undo = Undo.objects.filter(run_id=run_id).latest("id")
    assert undo.status == Undo.Status.DONE, undo.error
    assert '<span class="badge undone">undone</span></a> ' in page
    return {
        "end_to_end_s": elapsed,
        "preview_s": preview_s,
        "execution_s": undo.seconds(),
        "bookkeeping_s": sum(BOOKKEEPING),
        "records": undo.records_reverted,
        "changes_undone": len(undo.change_ids_done),
        "peak_mb": peak_mb(),
    }


def peak_mb() -> float:
    """This process's peak resident memory: VmHWM from /proc (Linux), else ru_maxrss.

    Not ru_maxrss on Linux: a child started by fork + exec reports the larger of its own
    peak and its parent's RSS at the fork (the parent here holds the 100k scenario).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(run_ids: list[int], warm_run_id: int, twin_ids: list[int] = ()) -> list[dict]:
    """Undo the runs end to end, one after the other, in a fresh process (each after its twin's raw limit)."""
    job = {"runs": run_ids, "warm": warm_run_id, "twins": list(twin_ids)}
    out = subprocess.run(
        [sys.executable, __file__, "--undo", json.dumps(job)],
        env=environment(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"The undo child process failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    began = time.perf_counter()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB_PATH}{suffix}").unlink(missing_ok=True)
    setup_django()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from tests.factories import make_agent, make_workflow

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("bench-owner")
    owner.groups.add(Group.objects.create(name="support"))
    workflow = make_workflow("bench")
    agent = make_agent(workflow, name="refund-bot", version="2.3")[0]

    t = time.perf_counter()
    runs_10k = [build(10_000, f"10k-{i}", owner, workflow, agent) for i in range(REPEATS)]
    twins_10k = [build(10_000, f"raw-{i}", owner, workflow, agent) for i in range(REPEATS)]
    sample = build(BASELINE_SAMPLE, "sample", owner, workflow, agent)
    warm_10k = build(2_000, "warm-10k", owner, workflow, agent)
    warm_100k = build(2_000, "warm-100k", owner, workflow, agent)
    run_100k = build(100_000, "100k", owner, workflow, agent)
    print(f"built the scenarios in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    per_record_s, sampled = per_record_revert(sample)
    all_10k = child(runs_10k, warm_10k, twins_10k)
    ours_10k = {key: statistics.median(r[key] for r in all_10k) for key in all_10k[0]}
    (ours_100k,) = child([run_100k], warm_100k)

    baseline_10k = per_record_s * 10_000
    raws = [r["raw_s"] for r in all_10k]
    ratio = statistics.median(r["raw_s"] / r["execution_s"] for r in all_10k)
    strict = min(raws) / ours_10k["execution_s"]  # the best raw time against our median
    for size, ours in ((f"10k (median of {REPEATS} runs)", ours_10k), ("100k", ours_100k)):
        print(
            f"{size}: end to end {ours['end_to_end_s']:.3f} s (preview page {ours['preview_s']:.3f} s, "
            f"execution {ours['execution_s']:.3f} s); {ours['records']:.0f} records set back, "
            f"{ours['changes_undone']:.0f} changes undone; peak RSS {ours['peak_mb']:.0f} MB (VmHWM)"
        )
    print(
        f"of the 10k execution, marking the changes undone with their events (approvals): "
        f"{ours_10k['bookkeeping_s']:.3f} s; raw / (execution without it) "
        f"{ours_10k['raw_s'] / (ours_10k['execution_s'] - ours_10k['bookkeeping_s']):.2f}"
    )
    print(
        "10k runs, raw limit just before / our execution / end to end (s):",
        ", ".join(f"{r['raw_s']:.3f}/{r['execution_s']:.3f}/{r['end_to_end_s']:.3f}" for r in all_10k),
    )
    print(
        f"raw SQL, 10k UPDATEs + 10k history INSERTs in one transaction: median {statistics.median(raws):.3f} s, "
        f"best {min(raws):.3f} s; raw/our execution: median of the pairs {ratio:.2f} "
        f"(stricter, best raw / our median: {strict:.2f})"
    )
    print(
        f"simple-history per-record revert: {1 / per_record_s:.0f} records/s measured on {sampled} records, "
        f"so {baseline_10k:.1f} s for 10k (extrapolated); ours {baseline_10k / ours_10k['end_to_end_s']:.1f}x faster"
    )
    print(f"whole bench: {time.perf_counter() - began:.0f} s")
    print(
        json.dumps(
            {
                "undo_10k_s": round(ours_10k["end_to_end_s"], 3),
                "undo_100k_s": round(ours_100k["end_to_end_s"], 3),
                "ratio_vs_raw_update": round(ratio, 3),
                "speedup_vs_per_record_revert": round(baseline_10k / ours_10k["end_to_end_s"], 1),
                "peak_mb_100k": round(ours_100k["peak_mb"], 1),
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--undo":
        setup_django()
        job = json.loads(sys.argv[2])
        print(json.dumps(undo_end_to_end(job["runs"], job["warm"], job["twins"])))
    else:
        main()
