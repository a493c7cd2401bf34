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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

changes_undone = Signal()
changes_redone = Signal()
undo_requested = Signal()
undo_finished = Signal()

_resolvers: dict[str, Callable[[Any], str]] = {}


def set_resolver(tag: str, resolve: Callable[[Any], str]) -> None:
    """`tag` is "change" or "run" (an id), or "record_changes" (a (record type, id) pair);
    `resolve` turns it into a URL."""
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
