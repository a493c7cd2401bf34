"""Undo asks its host to hand its tasks to the workers (undo.host.dispatch); without a host, it
publishes them itself once the transaction commits."""

from __future__ import annotations

from django.db import transaction

from countersign.outbox.models import Dispatch
from undo import host
from undo.services import EXECUTE_TASK


def test_the_host_fills_the_dispatch_hook_with_its_outbox(db):
    with transaction.atomic():
        host.dispatch(EXECUTE_TASK, [41])
    assert list(Dispatch.objects.values_list("task", "args")) == [(EXECUTE_TASK, [41])]


def test_without_a_host_the_task_is_published_after_commit(
    db, monkeypatch, memory_broker, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(host, "_dispatch", None)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            host.dispatch(EXECUTE_TASK, [42])
        assert memory_broker.published() == []  # not before the commit
    assert [(m["task"], m["args"]) for m in memory_broker.published()] == [(EXECUTE_TASK, [42])]
    assert not Dispatch.objects.exists()
