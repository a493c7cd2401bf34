"""Where a change or a run tag on a history row links to.

Undo knows changes and runs only as ids on history rows; the app that owns them
(approvals) says at start-up where their pages are.
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
