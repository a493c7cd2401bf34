"""Telling agents the outcome: each decision is POSTed to the agent's callback URL,
signed with HMAC-SHA256 over the exact body, retried with back-off, every attempt logged.

An agent checks a delivery with its secret:
    hmac.compare_digest(header, "sha256=" + hmac.new(secret, body, sha256).hexdigest())
The payload carries the delivery id, so a receiver can ignore a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from .models import CallbackDelivery, Change, Event

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Countersign-Signature"
# Answers that retrying cannot fix (except timeouts and rate limits).
_PERMANENT = set(range(300, 500)) - {408, 425, 429}


def sign(secret: str, body: bytes) -> str:
    """The signature header value for `body`: "sha256=<hex HMAC>"."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def decision_payload(change: Change) -> dict:
    """What the agent learns: the decision, who decided, the reason and any correction."""
    approvals = [
        {"reviewer": a.reviewer.get_username(), "at": a.created_at.isoformat(), "edited": a.edited_values is not None}
        for a in change.current_approvals(change.approvals.select_related("reviewer"))
    ]
    return {
        "change": change.pk,
        "operation_id": change.operation_id,
        "run": change.run.external_id,
        "decision": "rejected" if change.status == Change.Status.REJECTED else "approved",
        "status": change.status,
        "reason": change.reject_reason,
        "values": change.values,
        "edited_values": change.edited_values,
        "approvals": approvals,
        "decided_by": change.approver.get_username() if change.approver_id else None,
        "decided_at": change.decided_at.isoformat() if change.decided_at else None,
    }


def announce_decision(change: Change) -> CallbackDelivery | None:
    """Record a delivery of `change`'s decision for its agent's callback URL; it is sent after commit."""
    agent = change.agent
    if not agent.callback_url:
        return None
    delivery = CallbackDelivery.objects.create(
        change=change,
        agent=agent,
        url=agent.callback_url,
        payload=decision_payload(change),
        next_attempt_at=timezone.now(),
    )
    delivery.payload["delivery"] = delivery.pk
    delivery.save(update_fields=["payload"])
    transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


def enqueue_delivery(delivery_id: int) -> None:
    from .tasks import deliver_decision_task

    try:
        deliver_decision_task.delay(delivery_id)
    except BrokerError as exc:
        logger.warning("Broker unavailable (%s); callback %s waits for the resend sweep", exc, delivery_id)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one attempt; `retry_in` (seconds) when another attempt should follow."""

    state: str
    retry_in: int | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A signed decision goes to the registered URL only, never where a redirect points.
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _opener.open(request, timeout=settings.CALLBACK_TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


def deliver_decision(*, delivery_id: int) -> Attempt:
    """Make one attempt to POST a decision; safe to run twice (each attempt is claimed first)."""
    delivery = CallbackDelivery.objects.select_related("agent").get(pk=delivery_id)
    if delivery.state != CallbackDelivery.State.PENDING:
        return Attempt(delivery.state)
    attempt = delivery.attempts + 1
    now = timezone.now()
    # Claim attempt n: a redelivered task or the resend sweep cannot make the same attempt again.
    claimed = CallbackDelivery.objects.filter(
        pk=delivery.pk, state=CallbackDelivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=attempt, next_attempt_at=now + timedelta(seconds=2 * settings.CALLBACK_TIMEOUT_SECONDS))
    if not claimed:
        return Attempt(CallbackDelivery.State.PENDING)

    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Countersign-callbacks",
        "X-Countersign-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(delivery.agent.callback_secret, body),
    }
    # The HTTP call happens outside any transaction: a slow agent holds no lock.
    status_code, error = _post(delivery.url, body, headers)
    delivered = status_code is not None and 200 <= status_code < 300

    delivery.attempts = attempt
    delivery.last_status_code = status_code
    delivery.last_error = error
    delivery.log = [*delivery.log, {"at": now.isoformat(), "status": status_code, "error": error}]
    retry_in = None
    if delivered:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = CallbackDelivery.State.DELIVERED, now, None
    elif status_code in _PERMANENT or attempt >= settings.CALLBACK_MAX_ATTEMPTS:
        delivery.state, delivery.next_attempt_at = CallbackDelivery.State.FAILED, None
    else:
        retry_in = settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    delivery.save(
        update_fields=["attempts", "last_status_code", "last_error", "log", "state", "delivered_at", "next_attempt_at"]
    )
    if retry_in is None:
        _delivery_event(delivery)
    return Attempt(delivery.state, retry_in)


def _delivery_event(delivery: CallbackDelivery) -> None:
    if delivery.state == CallbackDelivery.State.DELIVERED:
        message = f"The decision was delivered to the agent's callback (attempt {delivery.attempts})."
    else:
        message = (
            f"The decision could not be delivered to the agent's callback after {delivery.attempts} "
            f"attempt(s): {delivery.last_error or delivery.last_status_code}. The agent can still read it from the API."
        )
    change = delivery.change
    Event.objects.create(
        kind=Event.Kind.CHANGE_CALLBACK,
        workflow_id=change.workflow_id,
        run_id=change.run_id,
        change_id=change.pk,
        actor_label="system (callbacks)",
        message=message,
        details={"delivery": delivery.pk, "state": delivery.state},
    )


def resend_overdue() -> int:
    """Enqueue again the pending deliveries whose task was lost (the database is the truth)."""
    overdue = timezone.now() - timedelta(seconds=settings.CALLBACK_RESEND_AFTER_SECONDS)
    ids = list(
        CallbackDelivery.objects.filter(state=CallbackDelivery.State.PENDING, next_attempt_at__lt=overdue)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:1000]
    )
    for delivery_id in ids:
        enqueue_delivery(delivery_id)
    return len(ids)
