"""Upgrading to the outbox hands it the work that was waiting for a worker: before it, sweepers
re-found queued changes, pending callbacks and queued undos by their status; after it, only an
open Dispatch row brings a task to a worker (migration approvals 0009)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from approvals.models import CallbackDelivery, Change, Run
from countersign.outbox.models import Dispatch
from tests.factories import make_agent, make_ticket, make_workflow
from undo.models import Undo

S = Change.Status
BEFORE = ("approvals", "0008_event_kinds_say_what_happened")


@pytest.mark.django_db(transaction=True)
def test_work_waiting_at_the_upgrade_is_handed_to_the_outbox():
    MigrationExecutor(connection).migrate([BEFORE])  # the data step is the only one undone: same tables
    workflow = make_workflow()
    agent, _ = make_agent(workflow)
    run = Run.objects.create(workflow=workflow, agent=agent, external_id="r-1")
    ticket = make_ticket()

    def change(n: int, status: str) -> Change:
        return Change.objects.create(
            run=run, workflow=workflow, agent=agent, operation_id=f"op-{n}", body_hash="x", record_type="ticket",
            record_ids=[ticket.pk], values={"tags": "b"}, expected={}, risk=0.5, confidence=0.5, status=status,
        )  # fmt: skip

    queued = [change(n, S.QUEUED) for n in range(3)]
    applied = change(9, S.APPLIED)
    pending = CallbackDelivery.objects.create(change=applied, agent=agent, url="https://agent.example/cb", payload={})
    CallbackDelivery.objects.create(
        change=applied, agent=agent, url="https://agent.example/cb", payload={}, state="delivered"
    )
    waiting_undo = Undo.objects.create(description="an undo asked for before the upgrade", scope_key="run:1")
    Dispatch.objects.all().delete()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    handed = sorted(Dispatch.objects.values_list("task", "args", "state"))
    assert handed == [
        ("approvals.tasks.apply_changes_task", [[c.pk for c in queued]], "pending"),
        ("approvals.tasks.deliver_decision_task", [pending.pk], "pending"),
        ("undo.tasks.execute_undo_task", [waiting_undo.pk], "pending"),
    ]
