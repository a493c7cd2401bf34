"""The banner every page shows while a workflow is paused: what, by whom, since when and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

from .. import access
from . import selectors

BANNER_LINES = 3


@dataclass(frozen=True)
class PausedLine:
    """ "Paused: ticket-triage, by maya since 14:02 (2 minutes ago): tags look wrong." """

    name: str
    url: str
    by: str
    at: datetime | None
    since: str  # "14:02" today, else "2026-12-01 14:02"
    reason: str


class PausedBanner:
    """Read when a page renders the banner, not before: one query, for members only (the login
    page, anonymous visitors and people in no group cost nothing)."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def _paused(self) -> list[PausedLine]:
        if not access.is_member(self.user):
            return []
        today = timezone.localdate()
        lines = []
        for w in selectors.paused_workflows():
            at = timezone.localtime(w.paused_at) if w.paused_at else None
            since = "" if at is None else at.strftime("%H:%M" if at.date() == today else "%Y-%m-%d %H:%M")
            reason = w.pause_reason.rstrip(". ") or "no reason given"
            lines.append(PausedLine(w.name, w.get_absolute_url(), w.paused_by_label or "someone", at, since, reason))
        return lines

    @property
    def lines(self) -> list[PausedLine]:
        return self._paused[:BANNER_LINES]

    @property
    def more(self) -> int:
        return max(len(self._paused) - BANNER_LINES, 0)

    @property
    def may_resume(self) -> bool:
        return access.may_pause(self.user)


def paused_banner(request: HttpRequest) -> dict:
    return {"paused_banner": PausedBanner(getattr(request, "user", None))}
