"""Telling agents the outcome: each decision, and what came of it (applied, failed, conflict,
undone, redone), is POSTed to the agent's callback URL, signed with HMAC-SHA256 over the exact
body, retried with back-off, every attempt logged.

An agent checks a delivery with its secret:
    hmac.compare_digest(header, "sha256=" + hmac.new(secret, body, sha256).hexdigest())
The payload carries the delivery id, so a receiver can ignore a repeat.
Where a callback may go (public addresses only) is `approvals.agents.outbound`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from countersign.outbox.dispatcher import dispatch, dispatch_each

from .. import audit
from ..models import Agent, Approval, CallbackDelivery, Change, Event
from .outbound import post

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Countersign-Signature"
DELIVER_TASK = "approvals.tasks.deliver_decision_task"
DELIVER_MANY_TASK = "approvals.tasks.deliver_callbacks_task"
# Answers that retrying cannot fix (except timeouts and rate limits).
_PERMANENT = set(range(300, 500)) - {408, 425, 429}


def sign(secret: str, body: bytes) -> str:
    """The signature header value for `body`: "sha256=<hex HMAC>"."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


S = Change.Status

# What the agent is told, by the status a change moves to (a redo, undone → applied, is "redone").
# A move to any other status tells nothing: the agent's own POST already answered it.
OUTCOMES: dict[str, str] = {
    S.APPROVED: "approved",
    S.REJECTED: "rejected",
    S.APPLIED: "applied",
    S.FAILED: "failed",
    S.CONFLICT: "conflict",
    S.UNDONE: "undone",
}


def outcome_of(frm: str, to: str) -> str | None:
    """The outcome the agent hears of when a change moves from `frm` to `to`; None for a move it is not told."""
    if frm == S.UNDONE and to == S.APPLIED:
        return "redone"
    return OUTCOMES.get(to)


def outcome_payload(change: Change, outcome: str) -> dict:
    """What the agent learns: what happened (`outcome`), the decision and who made it, the reason
    and any correction, the records (a create's new one once applied) and any error."""
    approvals = [
        {"reviewer": a.reviewer.get_username(), "at": a.created_at.isoformat(), "edited": a.edited_values is not None}
        for a in change.current_approvals(_approvals(change))
    ]
    return {
        "change": change.pk,
        "operation_id": change.operation_id,
        "run": change.run.external_id,
        "outcome": outcome,
        "decision": "rejected" if change.status == S.REJECTED else "approved",
        "status": change.status,
        "reason": change.reject_reason,
        "values": change.values,
        "edited_values": change.edited_values,
        "record_type": change.record_type,
        "record_ids": change.applied_record_ids or change.record_ids,
        "error": change.last_error if change.status in (S.FAILED, S.CONFLICT) else "",
        "approvals": approvals,
        "decided_by": change.approver.get_username() if change.approver_id else None,
        "decided_at": change.decided_at.isoformat() if change.decided_at else None,
        "applied_at": change.applied_at.isoformat() if change.applied_at else None,
    }


def _approvals(change: Change):
    if "approvals" in getattr(change, "_prefetched_objects_cache", {}):
        return change.approvals.all()
    return change.approvals.select_related("reviewer")


def announce(change: Change, *, outcome: str) -> CallbackDelivery | None:
    """Record a delivery of `change`'s outcome for its agent's callback URL; it is sent after commit.

    Called by the lifecycle in the transaction that moves the change, so the agent is told
    exactly the moves that happened.
    """
    agent = change.agent
    if not agent.callback_url:
        return None
    delivery = CallbackDelivery.objects.create(
        change=change,
        agent=agent,
        url=agent.callback_url,
        payload=outcome_payload(change, outcome),
        next_attempt_at=timezone.now(),
    )
    dispatch(DELIVER_TASK, [delivery.pk])
    return delivery


_MANY_CHUNK = 1000


def announce_many(change_ids: list[int], *, outcome: str) -> list[int]:
    """`announce` for many changes at once (an undo of a run): one delivery each for the agents
    with a callback, created in bulk and handed to the workers in batches. Returns the delivery ids."""
    urls = dict(Agent.objects.exclude(callback_url="").values_list("pk", "callback_url"))
    if not urls or not change_ids:
        return []  # the usual case costs this one query
    now = timezone.now()
    made: list[int] = []
    for start in range(0, len(change_ids), _MANY_CHUNK):
        changes = (
            Change.objects.filter(pk__in=change_ids[start : start + _MANY_CHUNK], agent_id__in=list(urls))
            .select_related("run", "approver")
            .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("reviewer")))
        )
        deliveries = [
            CallbackDelivery(
                change=c,
                agent_id=c.agent_id,
                url=urls[c.agent_id],
                payload=outcome_payload(c, outcome),
                next_attempt_at=now,
            )
            for c in changes
        ]
        made.extend(d.pk for d in CallbackDelivery.objects.bulk_create(deliveries))
    # Handed to the workers in batches, a task each: the retries of each are its own (see deliver_decision).
    dispatch_each(
        DELIVER_MANY_TASK, ([made[start : start + _TASK_BATCH]] for start in range(0, len(made), _TASK_BATCH))
    )
    return made


_TASK_BATCH = 100


def deliver_many(*, delivery_ids: list[int]) -> dict[int, Attempt]:
    """Make the next attempt of each delivery, one after the other; returns each attempt's outcome."""
    return {delivery_id: deliver_decision(delivery_id=delivery_id) for delivery_id in delivery_ids}


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt; `retry_in` (seconds) when another attempt should follow."""

    state: str
    retry_in: int | None = None


def deliver_decision(*, delivery_id: int) -> Attempt:
    """Make one attempt to POST a decision; safe to run twice (each attempt is claimed first)."""
    delivery = CallbackDelivery.objects.select_related("agent").get(pk=delivery_id)
    if delivery.state != CallbackDelivery.State.PENDING:
        return Attempt(delivery.state)
    if not delivery.agent.callback_url:
        _stop(CallbackDelivery.objects.filter(pk=delivery.pk))
        return Attempt(CallbackDelivery.State.FAILED)
    attempt = delivery.attempts + 1
    now = timezone.now()
    # Claim attempt n: a redelivered task or the resend sweep cannot make the same attempt again.
    claimed = CallbackDelivery.objects.filter(
        pk=delivery.pk, state=CallbackDelivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=attempt, next_attempt_at=now + timedelta(seconds=2 * settings.CALLBACK_TIMEOUT_SECONDS))
    if not claimed:
        return Attempt(CallbackDelivery.State.PENDING)

    # The delivery's id goes in the body, so a receiver can ignore a repeat (deliveries are made in bulk).
    body = json.dumps({**delivery.payload, "delivery": delivery.pk}, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Countersign-callbacks",
        "X-Countersign-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(delivery.agent.callback_secret, body),
    }
    # To the receiver the agent names now (it signs with the current secret too), checked again by post().
    delivery.url = delivery.agent.callback_url
    # The HTTP call happens outside any transaction: a slow agent holds no lock.
    answer = post(delivery.url, body, headers, timeout=settings.CALLBACK_TIMEOUT_SECONDS)
    status_code, error = answer.status, answer.error
    delivered = status_code is not None and 200 <= status_code < 300

    delivery.attempts = attempt
    delivery.last_status_code = status_code
    delivery.last_error = error
    delivery.log = [*delivery.log, {"at": now.isoformat(), "status": status_code, "error": error}]
    retry_in = None
    if delivered:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = CallbackDelivery.State.DELIVERED, now, None
    elif answer.refused or status_code in _PERMANENT or attempt >= settings.CALLBACK_MAX_ATTEMPTS:
        delivery.state, delivery.next_attempt_at = CallbackDelivery.State.FAILED, None
    else:
        retry_in = settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    with transaction.atomic():
        delivery.save(
            update_fields=[
                "url",
                "attempts",
                "last_status_code",
                "last_error",
                "log",
                "state",
                "delivered_at",
                "next_attempt_at",
            ]
        )
        if retry_in is None:
            _delivery_event(delivery)
        else:
            dispatch(DELIVER_TASK, [delivery.pk], not_before=delivery.next_attempt_at)
    return Attempt(delivery.state, retry_in)


def stop_callbacks(*, agent: Agent) -> int:
    """The agent removed its callback URL: nothing more is sent to it, not even pending retries.
    Returns how many pending deliveries were stopped."""
    agent.set_callback("")
    agent.save(update_fields=["callback_url", "callback_secret"])
    return _stop(CallbackDelivery.objects.filter(agent=agent))


def _stop(deliveries) -> int:
    return deliveries.filter(state=CallbackDelivery.State.PENDING).update(
        state=CallbackDelivery.State.FAILED,
        next_attempt_at=None,
        last_error="not sent: the agent removed its callback URL",
    )


# "The agent's callback was told the change …"
_TOLD = {
    "applied": "was applied",
    "failed": "failed",
    "conflict": "met a conflict (its record changed)",
    "undone": "was undone",
    "redone": "was put back",
}


def _delivery_event(delivery: CallbackDelivery) -> None:
    """The last attempt's event: the agent was told, or could not be and is not tried again."""
    actor = audit.Actor.system("callbacks")
    happened = _TOLD.get(delivery.payload.get("outcome", ""))
    change = delivery.change
    callback = f"agent {delivery.agent}'s callback"
    if delivery.state == CallbackDelivery.State.DELIVERED:
        told = (
            f"told {callback} that change {change.pk} {happened}"
            if happened
            else (f"delivered the decision on change {change.pk} to {callback}")
        )
        text = f"{actor.label}: {told} (attempt {delivery.attempts}). Nothing more is sent for it."
    else:
        what = f"told the change {happened}" if happened else "given the decision"
        text = (
            f"{actor.label}: {callback} could not be {what} on change {change.pk} after {delivery.attempts} "
            f"attempt(s): {delivery.last_error or f'HTTP {delivery.last_status_code}'}. "
            "No more attempts are made; the agent can still read it from the API."
        )
    details = {"delivery": delivery.pk, "state": delivery.state}
    audit.write([audit.Entry.about(change, Event.Kind.CALLBACK, actor, text, details=details)])
