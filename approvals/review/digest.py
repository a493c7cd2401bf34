"""Reviewers learn what waits: one digest email per owner group listing the high-risk
changes that have waited longer than their workflow allows. Each change is listed once."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..lifecycle import WAITING
from ..models import HIGH_RISK, Change, Event, Workflow
from ..templatetags.words import how_long
from ..workflows import selectors

logger = logging.getLogger(__name__)
MAX_PER_DIGEST = 200


def overdue_changes(*, now=None) -> list[Change]:
    """High-risk changes waiting past their workflow's threshold, not yet in a digest."""
    now = now or timezone.now()
    overdue: list[Change] = []
    for workflow in Workflow.objects.all():
        # `updated_at` moves only with the status: it is when the change began to wait.
        waited_since = now - timedelta(minutes=workflow.review_wait_threshold)
        overdue += Change.objects.filter(
            workflow=workflow,
            status__in_constants=WAITING,
            risk__gte=HIGH_RISK,
            digest_sent_at__isnull=True,
            updated_at__lte=waited_since,
        ).select_related("workflow", "run", "agent")[:MAX_PER_DIGEST]
    return overdue


def send_review_digests(*, now=None) -> dict[str, int]:
    """Email each review group one digest of its overdue high-risk changes; returns how many each got."""
    now = now or timezone.now()
    by_group: dict[str, list[Change]] = {}
    for change in overdue_changes(now=now):
        by_group.setdefault(change.review_group or "reviewers", []).append(change)
    sent = {}
    for group, changes in sorted(by_group.items()):
        recipients = _recipients(group)
        if not recipients:
            # Nothing is marked: once someone in the group has an address, the next run lists them.
            logger.warning(
                "review digest: nobody in group %s has an email address; %d changes wait for one",
                group,
                len(changes),
            )
            continue
        # Claim first, so two beat runs never list the same change twice.
        ids = [c.pk for c in changes]
        claimed = Change.objects.filter(pk__in=ids, digest_sent_at__isnull=True).update(digest_sent_at=now)
        if claimed != len(ids):
            mine = set(Change.objects.filter(pk__in=ids, digest_sent_at=now).values_list("pk", flat=True))
            changes = [c for c in changes if c.pk in mine]
        if not changes:
            continue
        try:
            send_mail(_subject(group, changes), _body(group, changes, now), None, recipients)
        except Exception:
            # Not sent: release the changes so the next run lists them again.
            Change.objects.filter(pk__in=[c.pk for c in changes], digest_sent_at=now).update(digest_sent_at=None)
            raise
        actor = audit.Actor.system("review digest")
        ids = [c.pk for c in changes]
        people = f"{len(recipients)} {'person' if len(recipients) == 1 else 'people'}"
        text = (
            f"{actor.label}: e-mailed the {group} group ({people}) about {len(changes)} "
            f"high-risk change(s) waiting too long: {_listed(ids)}. "
            f"Next: a {group} reviewer decides them; no digest lists them again."
        )
        # What this records is an e-mail, which no transaction holds: it is written once sent,
        # in its own transaction (the claim above committed before the sending, on purpose).
        with transaction.atomic():
            audit.write([audit.Entry(Event.Kind.DIGEST, actor, text, details={"group": group, "changes": ids})])
        sent[group] = len(changes)
    return sent


def _listed(ids: list[int], most: int = 10) -> str:
    """ "#4, #7 and 3 more" """
    shown = ", ".join(f"#{pk}" for pk in ids[:most])
    return f"{shown} and {len(ids) - most} more" if len(ids) > most else shown


def _recipients(group: str) -> list[str]:
    users = get_user_model().objects.filter(groups__name=group, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def _subject(group: str, changes: list[Change]) -> str:
    n = len(changes)
    return f"[Countersign] {n} high-risk change{'s' if n != 1 else ''} waiting too long for {group} review"


def _body(group: str, changes: list[Change], now) -> str:
    lines = [
        f"These high-risk changes have waited longer than their workflow allows for a {group} reviewer:",
        "",
    ]
    for item in selectors.describe(changes):
        change = item.change
        lines.append(f"- {'; '.join(item.sentences)}")
        lines.append(
            f"  risk {change.risk:.2f}, {change.workflow}, waiting {how_long(change.updated_at, now)} "
            f"(threshold {change.workflow.review_wait_threshold} min)"
        )
        lines.append(f"  {settings.SITE_URL.rstrip('/')}{change.get_absolute_url()}")
    lines += ["", f"The review queue: {settings.SITE_URL.rstrip('/')}/review/?risk=high"]
    return "\n".join(lines)
