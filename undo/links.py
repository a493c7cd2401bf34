"""Where a change or a run tag on a history row links to, and what a run is called.

Undo knows changes and runs only as ids on history rows; the app that owns them
(approvals) says at start-up where their pages are and how runs are named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
