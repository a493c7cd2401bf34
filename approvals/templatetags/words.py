"""Small filters that put times in plain words."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def how_long(since: datetime | None, now: datetime | None = None) -> str:
    """ "5 minutes", "2 hours, 3 minutes" or "less than a minute" (where timesince says "0 minutes")."""
    if since is None:
        return ""
    now = now or timezone.now()
    return "less than a minute" if now - since < timedelta(minutes=1) else timesince(since, now)
