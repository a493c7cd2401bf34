"""Upgrading to the outbox hands it the work that was waiting for a worker: before it, sweepers
re-found queued changes, pending callbacks and queued undos by their status; after it, only an
open Dispatch row brings a task to a worker (migration approvals 0009)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from approvals.models import Change
from countersign.outbox.models import Dispatch

S = Change.Status
BEFORE = ("approvals", "0008_event_kinds_say_what_happened")


@pytest.mark.django_db(transaction=True)
def test_work_waiting_at_the_upgrade_is_handed_to_the_outbox():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])  # the data step is the only one undone: same tables
    # The models as they were at BEFORE: later migrations add columns today's models have.
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != BEFORE[0]]
    old = executor.loader.project_state([BEFORE, *others]).apps
    workflow = old.get_model("approvals", "Workflow").objects.create(name="ticket-triage")
    agent = old.get_model("approvals", "Agent").objects.create(name="triage-bot", token_hash="x" * 64)
    run = old.get_model("approvals", "Run").objects.create(workflow=workflow, agent=agent, external_id="r-1")
    customer = old.get_model("demo", "Customer").objects.create(name="Northwind", billing_email="ap@n.example")
    ticket = old.get_model("demo", "Ticket").objects.create(customer=customer, subject="Charged twice", status="open")
    OldChange = old.get_model("approvals", "Change")

    def change(n: int, status: str):
        return OldChange.objects.create(
            run=run, workflow=workflow, agent=agent, operation_id=f"op-{n}", body_hash="x", record_type="ticket",
            record_ids=[ticket.pk], values={"tags": "b"}, expected={}, risk=0.5, confidence=0.5, status=status,
        )  # fmt: skip

    queued = [change(n, S.QUEUED) for n in range(3)]
    applied = change(9, S.APPLIED)
    OldDelivery = old.get_model("approvals", "CallbackDelivery")
    pending = OldDelivery.objects.create(change=applied, agent=agent, url="https://agent.example/cb", payload={})
    OldDelivery.objects.create(
        change=applied, agent=agent, url="https://agent.example/cb", payload={}, state="delivered"
    )
    waiting_undo = old.get_model("undo", "Undo").objects.create(
        description="an undo asked for before the upgrade", scope_key="run:1"
    )
    Dispatch.objects.all().delete()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    handed = sorted(Dispatch.objects.values_list("task", "args", "state"))
    assert handed == [
        ("approvals.tasks.apply_changes_task", [[c.pk for c in queued]], "pending"),
        ("approvals.tasks.deliver_decision_task", [pending.pk], "pending"),
        ("undo.tasks.execute_undo_task", [waiting_undo.pk], "pending"),
    ]
