"""Undo's contract with the app that hosts it (approvals), in one place: what undo tells
its host, and what it asks of it. Undo never imports its host.

What undo tells (signals). Each is sent inside the transaction that wrote what it reports,
once per chunk: a receiver's writes commit or roll back with them.

- `changes_undone` — kwargs: undo (undo.models.Undo), change_ids (list[int]), user (or None):
  these changes' writes were taken back.
- `changes_redone` — the same, for a redo: these changes are in effect again.
- `undo_requested` / `undo_finished` — kwargs: undo. Sent in the transaction that records the
  undo being asked for, and the one that records it finished (done or failed): the host keeps
  the audit trail and writes its lines.

What undo asks (filled by the host at start-up, in its AppConfig.ready):

- `set_resolver(tag, resolve)` — where a change or a run tag on a history row links to.
- `set_run_names(names)` — what runs are called (the agent's run id), in one query.
- `set_access(may_see, may_undo)` — who sees records and undos, and who undoes and restores
  them: each `(user, record_types) -> bool`; `may_see(user, None)` asks whether the user sees
  any record at all. Without a host: admins and anyone in a group see, owner groups act.
- `set_record_section(render)` — what the host adds to a record's page (the changes proposed
  on it): `render(request, record_type, record_id) -> HTML`.
- `set_dispatcher(dispatch)` — how undo's Celery tasks are handed to the workers: `dispatch(task,
  args, not_before=None)` is called inside the transaction that asks for the work and must run the
  task after commit (the host's outbox also publishes it off the request thread and sweeps what
  the broker lost). Undo's tasks are safe to run twice. Without a host, a plain
  `transaction.on_commit` publish is used: nothing sweeps what it loses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from . import registry

changes_undone = Signal()
changes_redone = Signal()
undo_requested = Signal()
undo_finished = Signal()

_resolvers: dict[str, Callable[[Any], str]] = {}


def set_resolver(tag: str, resolve: Callable[[Any], str]) -> None:
    """`tag` is "change" or "run"; `resolve` turns its id into a URL."""
    _resolvers[tag] = resolve


def url_for(tag: str, value: Any) -> str:
    if value is None or tag not in _resolvers:
        return ""
    return _resolvers[tag](value)


_run_names: Callable[[set[int]], dict[int, str]] | None = None


def set_run_names(names: Callable[[set[int]], dict[int, str]]) -> None:
    """`names` maps run ids to the names people know them by (the agent's run id), in one query."""
    global _run_names
    _run_names = names


def run_names(run_ids) -> dict[int, str]:
    ids = {i for i in run_ids if i}
    if not ids or _run_names is None:
        return {}
    return _run_names(ids)


# Who sees and who acts ------------------------------------------------------------------


def _any_group(user, record_types: Iterable[str] | None) -> bool:
    return user.is_authenticated and user.is_active and (user.is_superuser or user.groups.exists())


def _owners(user, record_types: Iterable[str]) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    groups = {g.name for g in user.groups.all()}
    return user.is_superuser or all(registry.get(name).owner_group in groups for name in record_types)


_may_see: Callable[[Any, Iterable[str] | None], bool] = _any_group
_may_undo: Callable[[Any, Iterable[str]], bool] = _owners


def set_access(*, may_see: Callable[[Any, Iterable[str] | None], bool], may_undo: Callable[[Any, Iterable[str]], bool]):
    global _may_see, _may_undo
    _may_see, _may_undo = may_see, may_undo


def may_see(user, record_types: Iterable[str] | None = None) -> bool:
    """Whether `user` sees records of these types and the undos touching them (None: any record)."""
    return _may_see(user, None if record_types is None else list(record_types))


def may_undo(user, record_types: Iterable[str]) -> bool:
    """Whether `user` may undo and restore records of these types."""
    return _may_undo(user, list(record_types))


# What the host adds to a record's page --------------------------------------------------

_record_section: Callable[[Any, str, int], str] | None = None


def set_record_section(render: Callable[[Any, str, int], str]) -> None:
    global _record_section
    _record_section = render


def record_section(request, record_type: str, record_id: int) -> str:
    return _record_section(request, record_type, record_id) if _record_section else ""


# How undo's tasks reach the workers -----------------------------------------------------

_dispatch: Callable[..., Any] | None = None


def set_dispatcher(dispatch: Callable[..., Any]) -> None:
    """`dispatch(task, args, not_before=None)` runs the Celery task named `task` after commit."""
    global _dispatch
    _dispatch = dispatch


def dispatch(task: str, args: list, *, not_before: datetime | None = None) -> None:
    """Run undo's Celery task `task` with `args` once the caller's transaction commits, not before `not_before`."""
    if _dispatch is not None:
        _dispatch(task, args, not_before=not_before)
        return
    transaction.on_commit(partial(_publish, task, args, not_before), robust=True)


def _publish(task: str, args: list, eta: datetime | None) -> None:
    from celery import current_app

    current_app.signature(task, args=args).apply_async(eta=eta)
