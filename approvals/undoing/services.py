"""Undoing from approvals' pages, one call per action: preview an undo, or confirm it.

Each call builds the undo's scope in the product's words (`scopes`), checks once that the
person may undo what the scope reaches (its record types, read from the history rows it would
reverse: the same on preview and confirm), then previews it or asks `undo` for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from undo import preview as undo_preview
from undo import selectors as undo_selectors
from undo import services as undo_services
from undo.models import Undo
from undo.preview import Preview

from .. import access
from ..models import Run
from ..review.services import BulkOutcome, reject_many
from . import scopes
from .scopes import UndoScope


class NotAllowed(undo_services.NotAllowed):
    """The person may not undo everything the scope reaches; `owned` are the record types
    among them they may undo (the incident page suggests narrowing to those)."""

    def __init__(self, record_types: list[str], owned: list[str]):
        super().__init__(undo_services.not_allowed_message(record_types))
        self.owned = owned


def preview_run_undo(*, run: Run, change_ids: list[int], user) -> tuple[UndoScope, Preview]:
    """What undoing the run (or the changes of it in `change_ids`) would do, nothing written.

    Raises NotAllowed, or UndoRefused / NothingToUndo (it cannot be undone now) in plain words.
    """
    target = scopes.for_run(run, change_ids or None)
    return target, _preview(target, user)


def undo_run(
    *,
    run: Run,
    change_ids: list[int],
    user,
    reject: Iterable[int] = (),
    forced: Iterable[str] = (),
    skipped: Iterable[str] = (),
    seen: Mapping[str, int] | None = None,
) -> tuple[Undo, BulkOutcome | None]:
    """Undo the run (or the changes of it in `change_ids`), then reject those of `reject` (the
    waiting changes its preview listed) that still wait for review: otherwise a reviewer approving
    one later would write what the undo took back. Changes that arrived after the preview are left
    to a person. Raises as `preview_run_undo` does."""
    target = scopes.for_run(run, change_ids or None)
    undo = _request(target, user, forced=forced, skipped=skipped, seen=seen)
    rejected = None
    if to_reject := sorted(set(reject) & set(target.waiting)):
        reason = f"Its run {run.external_id} was undone by {user.get_username()} (undo #{undo.pk})."
        rejected = reject_many(change_ids=to_reject, user=user, reason=reason)
    return undo, rejected


def preview_agent_undo(
    *, user, name: str, version: str, since: dt.datetime, until: dt.datetime, record_type: str = ""
) -> tuple[UndoScope, Preview]:
    """What undoing everything the agent (one version, or all) wrote in the window would do.
    Raises as `preview_run_undo` does."""
    target = scopes.for_agent(name=name, version=version, since=since, until=until, record_type=record_type)
    return target, _preview(target, user)


def undo_agent(
    *,
    user,
    name: str,
    version: str,
    since: dt.datetime,
    until: dt.datetime,
    record_type: str = "",
    forced: Iterable[str] = (),
    skipped: Iterable[str] = (),
    seen: Mapping[str, int] | None = None,
) -> Undo:
    """Undo everything the agent (one version, or all) wrote in the window. Raises as `preview_run_undo` does."""
    target = scopes.for_agent(name=name, version=version, since=since, until=until, record_type=record_type)
    return _request(target, user, forced=forced, skipped=skipped, seen=seen)


def _preview(target: UndoScope, user) -> Preview:
    _authorise(user, undo_selectors.extent(target.scope).record_types)
    return undo_preview.preview_undo(scope=target.scope, description=target.description)


def _request(target: UndoScope, user, **choices) -> Undo:
    # Undo checks with `_authorise` what the scope reaches once it has read it (after the
    # preview's `seen` has narrowed it), and checks nothing else.
    return undo_services.request_undo(
        scope=target.scope, description=target.description, user=user, authorise=_authorise, **choices
    )


def _authorise(user, record_types: list[str]) -> None:
    """Who may undo: the one permission check of undoing from approvals' pages."""
    record_types = sorted(set(record_types))
    owned = [t for t in record_types if access.may_undo(user, [t])]
    if owned != record_types:
        raise NotAllowed(record_types, owned)
