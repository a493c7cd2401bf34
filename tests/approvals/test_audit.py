"""The audit trail has one writer: every path writes the kind that says what happened, in the
transaction of what it records, with a line that says who started it and what happens next."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from approvals import audit, lifecycle
from approvals.apply.services import apply_changes
from approvals.lifecycle import ALLOWED, Actor
from approvals.models import Change, Event, Run, Workflow
from approvals.review import services
from approvals.review.digest import send_review_digests
from approvals.rules.editing import save_rules
from approvals.tasks import deliver_decision_task
from approvals.workflows.services import resume_workflow
from demo.models import Ticket
from tests.factories import make_agent, make_rule, make_tickets, make_workflow, propose_waiting, ticket_change
from tests.undo.conftest import apply_run, redo, undo
from undo import services as undo_services
from undo.models import Undo

S = Change.Status
K = Event.Kind
ROOT = Path(__file__).resolve().parents[2]


def kinds(**filters) -> list[str]:
    return list(Event.objects.filter(**filters).order_by("id").values_list("kind", flat=True))


def post(api, ticket, operation_id="op-1", **body) -> Change:
    response = api.post(
        "/api/v1/changes", {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket, operation_id, **body)}
    )
    assert response.status_code in (201, 202), response.content  # 202: held (paused)
    return Change.objects.get(pk=response.json()["id"])


# The table: a move's kind follows from the move -----------------------------------------


def test_every_move_has_a_kind():
    assert {kind for moves in ALLOWED.values() for kind in moves.values()} <= set(K.values)
    assert ALLOWED[S.PENDING_REVIEW][S.APPROVED] == ALLOWED[S.CONFLICT][S.APPROVED] == K.APPROVED
    assert ALLOWED[S.APPLYING][S.QUEUED] == K.RETRY
    assert ALLOWED[S.APPLIED][S.UNDONE] == K.UNDONE and ALLOWED[S.UNDONE][S.APPLIED] == K.REDONE
    assert {ALLOWED[S.HELD][to] for to in ALLOWED[S.HELD]} == {K.ROUTED}


def test_every_kind_is_written_somewhere():
    # A kind nothing writes goes: each one is a move's kind in the table, or named by a writer.
    source = "\n".join(
        p.read_text()
        for p in (ROOT / "approvals").rglob("*.py")
        if "migrations" not in p.parts and p.name != "models.py"
    )
    in_table = {kind for moves in ALLOWED.values() for kind in moves.values()}
    unused = [k.name for k in K if k not in in_table and not re.search(rf"\b(K|Kind)\.{k.name}\b", source)]
    assert unused == []


def test_nothing_but_the_audit_writer_makes_events():
    offenders = []
    for path in (ROOT / "approvals").rglob("*.py"):
        if path.name == "audit.py" or "migrations" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"(?<![.\w])(?<!class )Event\(|Event\.objects\.\w*create|\.events\.\w*create|INSERT INTO", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# Each writer path writes the kind that says what happened ---------------------------------


def test_a_proposal_is_proposed_then_queued_then_claimed_and_applied(api, ticket):
    change = post(api, ticket)
    apply_changes(change_ids=[change.pk])
    assert kinds(change=change) == [K.PROPOSED, K.QUEUED, K.CLAIMED, K.APPLIED]
    first = Event.objects.filter(change=change).first()
    assert first.message.startswith(f"agent triage-bot v1.4 (run r-1): change {change.pk} proposed → auto-approved.")
    assert first.message.endswith("Next: it is queued for a worker.")


def test_a_conflict_and_a_failure(api, ticket):
    conflicting = post(api, ticket)
    Ticket.objects.filter(pk=ticket.pk).update(tags="vip")
    apply_changes(change_ids=[conflicting.pk])
    gone = post(api, make_tickets(1)[0], "op-2")
    Ticket.all_objects.filter(pk__in=gone.record_ids).delete()
    apply_changes(change_ids=[gone.pk])
    conflict = Event.objects.get(change=conflicting, kind=K.CONFLICT)
    # What failed, and what happens next.
    assert "tags is now vip" in conflict.message and "approves it again on the record as it is now" in conflict.message
    failed = Event.objects.get(change=gone, kind=K.FAILED)
    assert "no longer exists" in failed.message and failed.message.endswith("Nothing retries it now.")


def test_a_worker_that_cannot_finish_leaves_a_retry(api, ticket):
    change = post(api, ticket)
    lifecycle.claim([change.pk], lease_seconds=-1, actor=Actor.system("slow worker"))
    from approvals.apply.services import sweep

    sweep()
    assert kinds(change=change)[-1] == K.RETRY
    assert "Will retry: the worker did not finish in time" in Event.objects.filter(change=change).last().message


def test_review_writes_corrected_approved_and_rejected(api, ticket, support):
    needs_two = propose_waiting(api, ticket)
    Change.objects.filter(pk=needs_two.pk).update(approvals_required=2)
    services.approve_change(change=needs_two, user=support, values={"tags": "refunds"})
    assert kinds(change=needs_two) == [K.PROPOSED, K.CORRECTED, K.APPROVED]
    one_of_two = Event.objects.filter(change=needs_two).last()
    assert (one_of_two.from_status, one_of_two.to_status, one_of_two.actor) == ("", "", support)
    rejected = propose_waiting(api, make_tickets(1)[0], "op-2")
    services.reject_change(change=rejected, user=support, reason="Wrong customer")
    assert kinds(change=rejected) == [K.PROPOSED, K.REJECTED]
    assert "Reason: Wrong customer." in Event.objects.filter(change=rejected).last().message


def test_a_paused_workflow_holds_and_resuming_routes_again(api, ticket, workflow, admin_user):
    Workflow.objects.filter(pk=workflow.pk).update(state=Workflow.State.PAUSED)
    change = post(api, ticket)
    resume_workflow(workflow=Workflow.objects.get(pk=workflow.pk), actor=Actor.person(admin_user))
    assert kinds(change=change) == [K.PROPOSED, K.HELD, K.ROUTED]
    resumed = Event.objects.get(kind=K.RESUMED)
    assert resumed.message == (
        "ada: resumed workflow ticket-triage. 1 held change routed again: 1 queued. "
        "Next: workers apply what was queued."
    )


def test_saving_rules_is_rules_changed(operator, workflow):
    save_rules(
        workflow=workflow, rules=[make_rule("risky", [{"field": "risk", "op": "gte", "value": 0.7}])], user=operator
    )
    event = Event.objects.get(kind=K.RULES_CHANGED)
    assert event.actor == operator and event.workflow == workflow and "Next: new proposals" in event.message


def test_a_callback_is_callback(api, ticket, agent, support, receiver):
    agent.set_callback(receiver.url)
    agent.save()
    change = propose_waiting(api, ticket)
    services.reject_change(change=change, user=support, reason="no")
    deliver_decision_task.apply(args=[change.callback_deliveries.get().pk])
    assert kinds(change=change) == [K.PROPOSED, K.REJECTED, K.CALLBACK]


def test_a_digest_is_digest(api, ticket, support, workflow, mailoutbox):
    support.email = "sam@example.com"
    support.save()
    change = propose_waiting(api, ticket)
    Change.objects.filter(pk=change.pk).update(updated_at=timezone.now() - timedelta(days=1))
    send_review_digests()
    event = Event.objects.get(kind=K.DIGEST)
    assert event.message == (
        f"system (review digest): e-mailed the support group (1 person) about 1 high-risk change(s) waiting too "
        f"long: #{change.pk}. Next: a support reviewer decides them; no digest lists them again."
    )


def test_undo_redo_and_restore(support, agent, workflow):
    tickets = make_tickets(2)
    run, changes = apply_run(agent, workflow, "r-9", [(t, {"tags": "billing"}) for t in tickets])
    done = undo(support, run_id=run.pk, description="run r-9")
    assert kinds(details__undo=done.pk) == [K.UNDO_REQUESTED, K.UNDONE]
    assert kinds(change=changes[0])[-1] == K.UNDONE
    # One entry for many changes: each change's own event, with its id, run and workflow.
    for change in changes:
        event = Event.objects.filter(change=change).last()
        assert (event.run, event.workflow, event.actor) == (run, workflow, support)
        assert event.message == (
            f"sam: change {change.pk} applied → undone. Undone by undo #{done.pk}: run r-9. "
            "Nothing more happens unless the undo is itself undone."
        )
    back = redo(support, done)
    assert kinds(details__undo=back.pk) == [K.UNDO_REQUESTED, K.REDONE]
    assert kinds(change=changes[0])[-1] == K.REDONE

    first = tickets[0].history.order_by("history_id").first()
    latest = tickets[0].history.order_by("history_id").last()
    scope = undo_services.restore_scope(
        record_type="ticket", record_id=tickets[0].pk, history_id=first.history_id, upto_history_id=latest.history_id
    )
    restore = undo_services.request_undo(scope=scope, description="ticket back", user=support, kind=Undo.Kind.RESTORE)
    undo_services.execute_undo(undo_id=restore.pk)
    assert kinds(details__undo=restore.pk) == [K.UNDO_REQUESTED, K.RESTORED]


def test_a_failed_undo_is_failed(support, agent, workflow, monkeypatch):
    run, _ = apply_run(agent, workflow, "r-9", [(t, {"tags": "billing"}) for t in make_tickets(1)])

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("undo.services._run_chunk", broken)
    failed = undo(support, run_id=run.pk)
    event = Event.objects.filter(details__undo=failed.pk).last()
    assert event.kind == K.FAILED and "disk full" in event.message and "Run it again to finish." in event.message


# In the transaction of what it records --------------------------------------------------


def test_an_event_rolls_back_with_its_transaction(api, ticket, support):
    change = propose_waiting(api, ticket)
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.reject_change(change=change, user=support, reason="no")
        assert Event.objects.count() == before + 1
        raise RuntimeError("the caller's transaction fails after the move")
    assert Event.objects.count() == before
    assert Change.objects.get(pk=change.pk).status == S.PENDING_REVIEW


@pytest.mark.django_db(transaction=True)
def test_the_writer_refuses_to_write_outside_a_transaction():
    assert not connection.in_atomic_block
    entry = audit.Entry(K.DIGEST, Actor.system("test"), "system (test): nothing.")
    with pytest.raises(audit.OutsideTransaction):
        audit.write([entry])
    assert not Event.objects.exists()
    with transaction.atomic():
        assert audit.write([entry]) == 1
    assert Event.objects.get().message == "system (test): nothing."


@pytest.mark.parametrize("frm, to", [(f, t) for f, ts in ALLOWED.items() for t in ts])
def test_every_move_says_who_what_and_what_next(db, frm, to):
    workflow = make_workflow()
    agent, _ = make_agent(workflow)
    run = Run.objects.create(workflow=workflow, agent=agent, external_id="r-1")
    ticket = make_tickets(1)[0]
    change = Change.objects.create(
        run=run,
        workflow=workflow,
        agent=agent,
        operation_id="op-1",
        body_hash="x",
        record_type="ticket",
        record_ids=[ticket.pk],
        values={"tags": "billing"},
        risk=0.5,
        confidence=0.5,
        status=frm,
        review_group="support",
    )
    lifecycle.transition(change, to, actor=Actor.system("test"), reason="because")
    event = Event.objects.get(change=change)
    assert event.kind == ALLOWED[frm][to]
    assert event.message.startswith(f"system (test): change {change.pk} {S(frm).label} → {S(to).label}. because.")
    assert re.search(r" (Next: |Nothing )[^.]+\.$", event.message), event.message


# Old lines take the kind that says what happened ----------------------------------------

OLD_AND_NEW = [
    # old kind, from, to, details, new kind
    ("change.status", "proposed", "pending_review", {}, K.PROPOSED),
    ("change.status", "pending_review", "approved", {}, K.APPROVED),
    ("change.status", "queued", "applying", {}, K.CLAIMED),
    ("change.status", "applying", "queued", {}, K.RETRY),
    ("change.status", "held", "queued", {}, K.ROUTED),
    ("change.status", "undone", "applied", {}, K.REDONE),
    ("change.approval", "", "", {}, K.APPROVED),
    ("change.edited", "", "", {"agent": {}}, K.CORRECTED),
    ("change.callback", "", "", {"delivery": 1}, K.CALLBACK),
    ("rules.saved", "", "", {"version": 2}, K.RULES_CHANGED),
    ("workflow", "", "", {"queued": []}, K.RESUMED),
    ("system", "", "", {"group": "support"}, K.DIGEST),
    ("undo", "", "", {"undo": 1, "kind": "undo", "status": "running"}, K.UNDO_REQUESTED),
    ("undo", "", "", {"undo": 1, "kind": "undo", "status": "done"}, K.UNDONE),
    ("undo", "", "", {"undo": 2, "kind": "redo", "status": "done"}, K.REDONE),
    ("undo", "", "", {"undo": 3, "kind": "restore", "status": "done"}, K.RESTORED),
    ("undo", "", "", {"undo": 4, "kind": "undo", "status": "failed"}, K.FAILED),
]


@pytest.mark.django_db(transaction=True)
def test_the_migration_maps_old_kinds_and_back():
    before, after = ("approvals", "0007_event_kind_undo"), ("approvals", "0008_event_kinds_say_what_happened")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps.get_model("approvals", "Event")
    for kind, frm, to, details, _ in OLD_AND_NEW:
        old.objects.create(kind=kind, from_status=frm, to_status=to, details=details, actor_label="x", message="m")

    executor = MigrationExecutor(connection)
    executor.migrate([after])
    assert list(Event.objects.order_by("id").values_list("kind", flat=True)) == [row[-1] for row in OLD_AND_NEW]

    executor = MigrationExecutor(connection)
    executor.migrate([before])
    assert list(old.objects.order_by("id").values_list("kind", flat=True)) == [row[0] for row in OLD_AND_NEW]
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
