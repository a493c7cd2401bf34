"""A worker killed with -9 in the middle of applying: the changes it had claimed are applied by
another worker within seconds, each exactly once (one tagged history row each)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db.models import Count

from approvals.models import Change
from demo.models import Ticket
from tests.conftest import CLOSED_BROKER, ROOT, point_celery_at, start_celery_worker, stop_process, wait_until
from tests.factories import make_tickets, ticket_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

S = Change.Status
N = 1000


@pytest.fixture
def broker(redis_url, settings):
    settings.CELERY_BROKER_URL = redis_url
    point_celery_at(redis_url)
    yield redis_url
    point_celery_at(CLOSED_BROKER)


@pytest.fixture
def beat(broker, tmp_path):
    """Celery beat with the default schedule: the sweeper runs as often as it does under bin/run."""
    from django.db import connection

    env = {**os.environ, "REDIS_URL": broker, "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}"}
    with open(ROOT / "var" / "test-beat.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "countersign", "beat", "-s", str(tmp_path / "beat-schedule")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    yield process
    stop_process(process)


def _counts() -> dict[str, int]:
    return dict(Change.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def test_the_work_of_a_killed_worker_is_applied_by_another_within_seconds(broker, beat, api):
    tickets = make_tickets(N)
    for start in range(0, N, 1000):
        body = {
            "workflow": "ticket-triage",
            "run": "r-kill",
            "changes": [ticket_change(t, f"op-{t.pk}") for t in tickets[start : start + 1000]],
        }
        assert api.post("/api/v1/changes/batch", body).status_code == 201
    ids = list(Change.objects.values_list("pk", flat=True))
    assert len(ids) == N

    # Default lease and heartbeat, as under bin/run.
    doomed = start_celery_worker(broker, "doomed")
    try:
        deadline = time.monotonic() + 60
        while not Change.objects.filter(status=S.APPLYING).exists():
            assert time.monotonic() < deadline, f"the worker never claimed anything: {_counts()}"
            time.sleep(0.005)
        os.kill(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.wait(timeout=10)
    finally:
        stop_process(doomed)
    stranded = Change.objects.filter(status=S.APPLYING).count()
    assert stranded > 0, f"the worker finished its batch before it was killed: {_counts()}"

    survivor = start_celery_worker(broker, "survivor")
    try:

        def all_applied():
            """every change applied after the kill"""
            return _counts() == {S.APPLIED: N}

        wait_until(all_applied, timeout=60, interval=0.5)
        recovered_in = time.monotonic() - killed_at
    finally:
        stop_process(survivor)
    # Within seconds of the death, not after a two-minute lease.
    assert recovered_in < 40, f"{stranded} stranded changes took {recovered_in:.0f} s to be applied"

    # Exactly once: one history row tagged with each change, and every ticket written.
    rows = Ticket.history.model.objects.filter(cs_change_id__in=ids)
    per_change = dict(rows.values_list("cs_change_id").annotate(n=Count("history_id")).values_list("cs_change_id", "n"))
    assert set(per_change) == set(ids)
    assert set(per_change.values()) == {1}
    assert Ticket.objects.filter(pk__in=[t.pk for t in tickets], tags="billing").count() == N
