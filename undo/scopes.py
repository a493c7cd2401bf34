"""Undo scopes: which history rows an undo reverses, chosen by their tags."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q

from . import registry


class NothingToUndo(Exception):
    """The scope matches no write to any governed record; the message says why, in plain words."""


@dataclass(frozen=True)
class Scope:
    """Which history rows to reverse: every filter given must match."""

    change_ids: tuple[int, ...] = ()
    run_id: int | None = None
    agent_ids: tuple[int, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    undo_id: int | None = None
    record_type: str = ""
    record_id: int | None = None
    after_history_id: int | None = None
    upto_history_id: int | None = None
    # Frozen when the undo is made, and not part of the scope's identity (its key):
    # running the undo again later never reaches rows written after it was asked for.
    written_before: dt.datetime | None = None
    # What the owner's preview showed: per record type, the newest history id then. Rows
    # written after it were not shown, so they are not undone; nor is a type it did not show.
    seen: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        if not (self.change_ids or self.run_id or self.agent_ids or self.undo_id or self.record_id):
            # A window alone would be "everything everybody did": never an undo scope.
            raise ValueError("a scope names changes, a run, agents, an undo or a record")

    # The scope's one mapping to the `Undo` that holds it, both ways: `of` reads it back, and
    # `undo_fields` gives the fields to store.

    @classmethod
    def of(cls, undo) -> Scope:
        """The scope `undo` was made with; rows written after it was asked for stay out."""
        return cls(
            change_ids=tuple(undo.change_ids),
            run_id=undo.run_id,
            agent_ids=tuple(undo.agent_ids),
            since=undo.since,
            until=undo.until,
            undo_id=undo.target_id,
            record_type=undo.record_type,
            record_id=undo.record_id,
            after_history_id=undo.after_history_id,
            upto_history_id=undo.upto_history_id,
            written_before=None if undo.record_id else undo.created_at,
            seen=tuple(sorted(undo.seen_history.items())),
        )

    def undo_fields(self) -> dict:
        """The `Undo` fields that hold this scope (its key too): `Scope.of` reads them back."""
        return {
            "scope_key": self.key(),
            "change_ids": list(self.change_ids),
            "run_id": self.run_id,
            "agent_ids": list(self.agent_ids),
            "since": self.since,
            "until": self.until,
            "target_id": self.undo_id,
            "record_type": self.record_type,
            "record_id": self.record_id,
            "after_history_id": self.after_history_id,
            "upto_history_id": self.upto_history_id,
            "seen_history": dict(self.seen),
        }

    def key(self) -> str:
        """The same scope always has the same key: its undos and redos form its chain."""
        if self.undo_id:
            return f"undo:{self.undo_id}"
        if self.record_id:
            return f"restore:{self.record_type}:{self.record_id}:{self.after_history_id}:{self.upto_history_id}"
        parts = []
        if self.change_ids:
            parts.append("changes:" + ",".join(str(i) for i in sorted(self.change_ids)))
        if self.run_id:
            parts.append(f"run:{self.run_id}")
        if self.agent_ids:
            parts.append("agents:" + ",".join(str(i) for i in sorted(self.agent_ids)))
        if self.since:
            parts.append(f"since:{self.since.isoformat()}")
        if self.until:
            parts.append(f"until:{self.until.isoformat()}")
        if self.record_type:
            parts.append(f"type:{self.record_type}")
        return "|".join(parts)

    def history_q(self, rtype: registry.RecordType) -> Q | None:
        """The filter on `rtype`'s history rows; None when the scope cannot touch that type."""
        if self.record_type and self.record_type != rtype.name:
            return None
        seen = dict(self.seen)
        if seen and rtype.name not in seen:
            return None
        q = Q(history_id__lte=seen[rtype.name]) if seen else Q()
        if self.change_ids:
            q &= Q(cs_change_id__in=self.change_ids)
        if self.run_id:
            q &= Q(cs_run_id=self.run_id)
        if self.agent_ids:
            q &= Q(cs_agent_id__in=self.agent_ids)
        if self.since:
            q &= Q(history_date__gte=self.since)
        if self.until:
            q &= Q(history_date__lte=self.until)
        if self.written_before:
            q &= Q(history_date__lte=self.written_before)
        if self.undo_id:
            q &= Q(cs_undo_id=self.undo_id)
        if self.record_id:
            q &= Q(id=self.record_id)
            if self.after_history_id is not None:
                q &= Q(history_id__gt=self.after_history_id)
            if self.upto_history_id is not None:
                q &= Q(history_id__lte=self.upto_history_id)
        return q
