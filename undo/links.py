"""Where a change or a run tag on a history row links to.

Undo knows changes and runs only as ids on history rows; the app that owns them
(approvals) says at start-up where their pages are.
"""

from __future__ import annotations

from collections.abc import Callable

_resolvers: dict[str, Callable[[int], str]] = {}


def set_resolver(tag: str, resolve: Callable[[int], str]) -> None:
    """`tag` is "change" or "run"; `resolve` turns an id into a URL."""
    _resolvers[tag] = resolve


def url_for(tag: str, value: int | None) -> str:
    if value is None or tag not in _resolvers:
        return ""
    return _resolvers[tag](value)
