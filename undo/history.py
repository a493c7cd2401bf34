"""Tagging snapshots: every history row says which change, run and agent (or which undo) made it."""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass

from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record


@dataclass(frozen=True)
class Tags:
    change_id: int | None = None
    run_id: int | None = None
    agent_id: int | None = None
    agent_label: str = ""
    undo_id: int | None = None

    def as_history_attrs(self) -> dict:
        """The same tags as keyword values for bulk paths (`custom_historical_attrs=`)."""
        return {
            "cs_change_id": self.change_id,
            "cs_run_id": self.run_id,
            "cs_agent_id": self.agent_id,
            "cs_agent_label": self.agent_label,
            "cs_undo_id": self.undo_id,
        }


_current: contextvars.ContextVar[Tags | None] = contextvars.ContextVar("countersign_tags", default=None)


@contextmanager
def tagged(tags: Tags):
    """Tag every history row written by `save()` inside this block."""
    token = _current.set(tags)
    try:
        yield
    finally:
        _current.reset(token)


@receiver(pre_create_historical_record)
def _tag_history_row(sender, instance, history_instance, **kwargs):
    tags = _current.get()
    if tags is None or not hasattr(history_instance, "cs_change_id"):
        return
    for attr, value in tags.as_history_attrs().items():
        setattr(history_instance, attr, value)
