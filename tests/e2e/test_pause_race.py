"""A pause racing a real Celery worker that is applying a 5,000-change run.

The alerting hook pauses the workflow while the worker is mid-way. Nothing whose claim began after
the pause committed is applied (the claim and each change's apply read the workflow's state in
their own transaction); what was not applied is held, and listed; during the pause an operator
fixes a rule so that one ticket is refused; resuming routes the held changes again: that one is
refused, the worker applies the rest, each exactly once.
"""

from __future__ import annotations

import time

import pytest
from django.db.models import Count
from django.test import Client

from approvals.lifecycle import Actor
from approvals.models import Change, Event, Workflow
from approvals.rules.editing import save_rules
from approvals.workflows.services import resume_workflow
from countersign.outbox.dispatcher import OPEN
from countersign.outbox.models import Dispatch
from demo.models import Ticket
from tests.conftest import CLOSED_BROKER, point_celery_at, start_celery_worker, stop_process, wait_until
from tests.factories import make_rule, make_tickets, ticket_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

S = Change.Status
K = Event.Kind
N = 5000
PAUSE_AFTER = 300  # applied before the alert fires
CONCURRENCY = 1  # the worker's pool is solo: one change inside its atomic apply at a time
APPLY_TASK = "approvals.tasks.apply_changes_task"


@pytest.fixture
def broker(redis_url, settings):
    settings.CELERY_BROKER_URL = redis_url
    point_celery_at(redis_url)
    yield redis_url
    point_celery_at(CLOSED_BROKER)


def counts() -> dict[str, int]:
    return dict(Change.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def applied_ids() -> set[int]:
    return set(Change.objects.filter(status=S.APPLIED).values_list("pk", flat=True))


def settled() -> bool:
    """the worker to have run every apply task and to hold no claim"""
    return (
        not Dispatch.objects.filter(task=APPLY_TASK, state__in=OPEN).exists()
        and not Change.objects.filter(status__in=[S.APPLYING, S.QUEUED]).exists()
    )


def test_a_pause_stops_a_5000_change_run_mid_way_and_resume_routes_the_rest(broker, api, workflow, operator):
    started = time.monotonic()
    tickets = make_tickets(N)
    # The ticket the operator's fix will refuse: the last one, so it is still waiting at the pause.
    target = tickets[-1]
    Ticket.objects.filter(pk=target.pk).update(status="pending")
    token = workflow.set_pause_hook()
    workflow.save(update_fields=["pause_hook_hash", "pause_hook_prefix"])
    for start in range(0, N, 1000):
        body = {
            "workflow": "ticket-triage",
            "run": "r-race",
            "changes": [ticket_change(t, f"op-{t.pk}") for t in tickets[start : start + 1000]],
        }
        assert api.post("/api/v1/changes/batch", body).status_code == 201
    ids = set(Change.objects.values_list("pk", flat=True))
    assert len(ids) == N and counts() == {S.QUEUED: N}
    target_change = Change.objects.get(record_ids=[target.pk])

    worker = start_celery_worker(broker, "race")
    try:
        deadline = time.monotonic() + 30
        while Change.objects.filter(status=S.APPLIED).count() < PAUSE_AFTER:
            assert time.monotonic() < deadline, f"the worker is not applying: {counts()}"
            time.sleep(0.005)

        # The alerting tool trips the kill switch mid-run.
        response = Client().post(
            f"/hooks/pause/{token}/", '{"reason": "error rate above 5%"}', content_type="application/json"
        )
        assert response.status_code == 200, response.content
        at_pause = applied_ids()
        assert response.json()["already_paused"] is False
        assert PAUSE_AFTER <= len(at_pause) < N - 1000, f"the pause came too late to race anything: {counts()}"

        wait_until(settled, timeout=30, interval=0.2)
        time.sleep(0.5)  # the worker is idle: nothing more may move
        after = applied_ids()

        # At most the changes already inside their own atomic apply when the pause committed finish.
        assert at_pause <= after and len(after - at_pause) <= CONCURRENCY
        paused = Event.objects.get(kind=K.PAUSED, workflow=workflow)
        applied_later = Event.objects.filter(kind=K.APPLIED, id__gt=paused.pk)
        assert applied_later.count() <= CONCURRENCY
        assert all(e.created_at >= paused.created_at for e in applied_later)
        # No change whose claim began after the pause was applied (the claim itself holds them).
        claimed_later = set(Event.objects.filter(kind=K.CLAIMED, id__gt=paused.pk).values_list("change_id", flat=True))
        assert not claimed_later & after
        assert Event.objects.filter(kind=K.APPLIED).count() == len(after)

        # Held: everything not applied, listed; nothing queued for the workflow.
        held = set(Change.objects.filter(workflow=workflow, status=S.HELD).values_list("pk", flat=True))
        assert held == ids - after and len(held) == N - len(after)
        assert counts() == {S.APPLIED: len(after), S.HELD: len(held)}
        assert not Change.objects.filter(workflow=workflow, status=S.QUEUED).exists()
        assert set(paused.details["held"]) | set(paused.details["applying"]) >= held
        assert target_change.pk in held

        # During the pause an operator fixes a rule: proposals on pending tickets are refused.
        rules = [
            *workflow.rule_sets.order_by("-version").first().rules,
            make_rule(
                "not pending tickets", [{"field": "attr.ticket_status", "op": "in", "value": ["pending"]}], "refuse"
            ),
        ]
        assert save_rules(workflow=workflow, rules=rules, user=operator).version == 2

        outcome = resume_workflow(workflow=Workflow.objects.get(pk=workflow.pk), actor=Actor.person(operator))
        assert outcome.refused == [target_change.pk]
        assert len(outcome.queued) == len(held) - 1 and outcome.to_review == [] == outcome.asked_again

        def all_done():
            """the worker to apply every held change but the refused one"""
            return counts() == {S.APPLIED: N - 1, S.REFUSED: 1}

        wait_until(all_done, timeout=40, interval=0.25)
    finally:
        stop_process(worker)

    target_change.refresh_from_db()
    assert target_change.status == S.REFUSED and target_change.rule_set.version == 2
    resumed = Event.objects.get(kind=K.RESUMED)
    assert resumed.details["refused"] == [target_change.pk]
    # Exactly once: one tagged history row per applied change, none for the refused one.
    rows = Ticket.history.model.objects.filter(cs_change_id__in=ids)
    per_change = dict(rows.values_list("cs_change_id").annotate(n=Count("history_id")).values_list("cs_change_id", "n"))
    assert set(per_change) == ids - {target_change.pk}
    assert set(per_change.values()) == {1}
    assert Ticket.objects.filter(tags="billing").count() == N - 1
    assert Ticket.objects.get(pk=target.pk).tags == ""
    assert time.monotonic() - started < 90
