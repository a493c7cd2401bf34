"""Helpers for undo tests: runs of applied changes, people's edits, undos run to the end."""

from __future__ import annotations

import itertools

import pytest

from approvals import lifecycle
from approvals.apply.services import apply_changes
from approvals.lifecycle import Actor
from approvals.models import Change, Run
from undo import services
from undo.history import Tags, tagged
from undo.models import Undo
from undo.scopes import Scope

_ops = itertools.count(1)


def apply_run(agent, workflow, external_id: str, items) -> tuple[Run, list[Change]]:
    """A run whose changes were auto-approved and applied. `items`: (record, values) or
    (record_type, operation, record_ids, values)."""
    run, changes = propose_run(agent, workflow, external_id, items, decision=Change.Decision.AUTO_APPLY)
    apply_changes(change_ids=[c.pk for c in changes])
    return run, list(Change.objects.filter(pk__in=[c.pk for c in changes]).order_by("id"))


def propose_run(agent, workflow, external_id: str, items, *, decision=Change.Decision.REVIEW, review_group="support"):
    """A run whose changes were routed (`decision`) and stored, not applied: held for review by default."""
    run, _ = Run.objects.get_or_create(workflow=workflow, agent=agent, external_id=external_id)
    changes = []
    for item in items:
        if len(item) == 2:
            record, values = item
            item = (type(record)._meta.model_name, "update", [record.pk], values)
        record_type, operation, record_ids, values = item
        changes.append(
            Change(
                run=run,
                workflow=workflow,
                agent=agent,
                operation_id=f"op-{next(_ops)}",
                body_hash="-",
                record_type=record_type,
                operation=operation,
                record_ids=record_ids,
                values=values,
                risk=0.1,
                confidence=0.9,
                decision=decision,
                review_group=review_group if decision == Change.Decision.REVIEW else "",
            )
        )
    lifecycle.admit(changes, actor=Actor.of_agent(agent), paused=False)
    return run, changes


def human_edit(user, record, **values):
    """A person edits a record outside Countersign (snapshotted by simple-history, untagged)."""
    record.refresh_from_db()
    for name, value in values.items():
        setattr(record, name, value)
    record._history_user = user
    with tagged(Tags()):
        record.save()
    return record


def undo(user, *, description="the test scope", forced=(), skipped=(), **scope) -> Undo:
    """Ask for an undo of `scope` and run it to the end, as a worker would."""
    made = services.request_undo(
        scope=Scope(**scope), description=description, user=user, forced=forced, skipped=skipped
    )
    services.execute_undo(undo_id=made.pk)
    made.refresh_from_db()
    return made


def redo(user, of: Undo, forced=()) -> Undo:
    made = services.request_redo(undo=of, user=user, forced=forced)
    services.execute_undo(undo_id=made.pk)
    made.refresh_from_db()
    return made


@pytest.fixture
def run_agent(workflow):
    from tests.factories import make_agent

    return make_agent(workflow, name="triage-bot", version="2.3")[0]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Personas get passwords; hashing them with the production hasher is most of a test's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
