"""Handing work to Celery, written once: a row in the caller's transaction, published after
commit, marked done by the worker, swept while it is not.

    dispatch("approvals.tasks.apply_changes_task", [change_ids])

writes a `Dispatch` in the caller's transaction: rolled back with it, the task never runs. Once
the transaction commits, a thread of this process publishes it, so no request waits on a broker
that is down or hung (accepting connections and never answering); that costs the thread its
timeouts, never an answer. The worker marks the row done when the task returns. The sweeper
(`sweep`, from Celery beat) publishes again every row not done REQUEUE_AFTER_SECONDS after it was
due or last handed over: never published (the broker was down, the process ended first) or
published and lost (a worker killed mid-task, a broker that forgot it).

So a task may run twice, and each one handed over this way must be safe to: it claims its work
first (a status, an attempt) and does nothing for work already done. A task that finds its work
held by someone else's lease dispatches itself again for when the lease ends.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from celery import current_app
from celery.signals import task_failure, task_success
from django import db
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from .models import Dispatch

logger = logging.getLogger(__name__)
S = Dispatch.State
OPEN = (S.PENDING, S.SENT)
# Celery task ids of dispatches: "outbox-<id>", so the worker knows which row it ran.
TASK_ID_PREFIX = "outbox-"


def dispatch(task: str, args: list, *, not_before: datetime | None = None) -> Dispatch:
    """Run the Celery task named `task` with `args` once the caller's transaction commits, not
    before `not_before`."""
    return dispatch_each(task, [args], not_before=not_before)[0]


def dispatch_each(task: str, calls: Iterable[list], *, not_before: datetime | None = None) -> list[Dispatch]:
    """`dispatch` for many calls of one task (a batch of ids each), written with one INSERT."""
    now = timezone.now()
    rows = Dispatch.objects.bulk_create(
        [Dispatch(task=task, args=list(args), due_at=not_before or now, created_at=now) for args in calls]
    )
    if rows:
        transaction.on_commit(partial(publish_soon, rows))
    return rows


def publish(dispatches: list[Dispatch]) -> int:
    """Hand `dispatches` to the broker now; returns how many it took.

    At the first broker error the rest are left for the sweeper: each would cost the same timeouts.
    """
    sent: list[int] = []
    now = timezone.now()
    for row in dispatches:
        try:
            current_app.signature(row.task, args=row.args).apply_async(
                task_id=f"{TASK_ID_PREFIX}{row.pk}", eta=row.due_at if row.due_at > now else None
            )
        except BrokerError as exc:
            left = [d.pk for d in dispatches if d.pk not in sent]
            logger.warning("The broker is unavailable (%s); %d dispatches wait for the sweeper", exc, len(left))
            Dispatch.objects.filter(pk__in=left, state__in=OPEN).update(last_error=f"the broker is unavailable: {exc}")
            break
        sent.append(row.pk)
    if sent:
        # A fast worker may have marked a row done already: it stays done.
        Dispatch.objects.filter(pk__in=sent, state__in=OPEN).update(
            state=S.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1
        )
    return len(sent)


def sweep() -> dict[str, int]:
    """Publish again what is not done REQUEUE_AFTER_SECONDS after it was due or last handed over;
    give up, visibly, after OUTBOX_MAX_ATTEMPTS hand-overs; forget done rows after OUTBOX_KEEP_DAYS."""
    now = timezone.now()
    late = now - timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)
    overdue = Dispatch.objects.filter(state__in=OPEN, due_at__lte=late).filter(
        Q(sent_at__isnull=True) | Q(sent_at__lte=late)
    )
    given_up = 0
    for row in overdue.filter(attempts__gte=settings.OUTBOX_MAX_ATTEMPTS):
        error = f"Given up after {row.attempts} hand-overs to the workers. Last error: {row.last_error or 'none'}"
        given_up += Dispatch.objects.filter(pk=row.pk, state__in=OPEN).update(state=S.FAILED, last_error=error)
        logger.error("Dispatch %s: %s", row, error)
    lost = list(overdue.filter(attempts__lt=settings.OUTBOX_MAX_ATTEMPTS).order_by("due_at")[:1000])
    requeued = publish(lost) if lost else 0
    old = now - timedelta(days=settings.OUTBOX_KEEP_DAYS)
    done = list(Dispatch.objects.filter(state=S.DONE, done_at__lt=old).values_list("pk", flat=True)[:10_000])
    forgotten, _ = Dispatch.objects.filter(pk__in=done).delete()
    return {"requeued": requeued, "given_up": given_up, "forgotten": forgotten}


def hand_over_again(dispatches: Iterable[Dispatch]) -> int:
    """Publish these now, whatever their state (an admin's choice, e.g. after fixing what failed them)."""
    rows = list(dispatches)
    Dispatch.objects.filter(pk__in=[d.pk for d in rows]).update(state=S.PENDING, attempts=0)
    return publish(rows)


# Marking done: the worker's side -------------------------------------------------


def _dispatch_id(task_id: str | None) -> int | None:
    if not task_id or not task_id.startswith(TASK_ID_PREFIX):
        return None  # not handed over by the outbox (a beat task, a test's eager call)
    return int(task_id.removeprefix(TASK_ID_PREFIX))


@task_success.connect
def _mark_done(sender, **kwargs) -> None:
    pk = _dispatch_id(sender.request.id)
    if pk is not None:
        Dispatch.objects.filter(pk=pk).exclude(state=S.DONE).update(state=S.DONE, done_at=timezone.now())


@task_failure.connect
def _note_failure(sender, task_id=None, exception=None, **kwargs) -> None:
    # Left open: the sweeper hands it over again, and gives up after OUTBOX_MAX_ATTEMPTS.
    pk = _dispatch_id(task_id)
    if pk is not None:
        error = f"{type(exception).__name__}: {exception}"[:2000]
        Dispatch.objects.filter(pk=pk, state__in=OPEN).update(last_error=error)


# The publisher thread --------------------------------------------------------------

# Far more than a burst of requests dispatches; past it, the sweeper does the rest.
_pending: queue.Queue[list[Dispatch]] = queue.Queue(maxsize=10_000)
_lock = threading.Lock()
_publisher: threading.Thread | None = None
_started_in: int | None = None  # the process it runs in (threads do not survive fork)


def publish_soon(dispatches: list[Dispatch]) -> None:
    """Publish `dispatches` from this process's publisher thread; never blocks (when the thread is
    far behind, they are left to the sweeper)."""
    _ensure_publisher()
    try:
        _pending.put_nowait(dispatches)
    except queue.Full:
        logger.warning("The broker is far behind; %d dispatches are left to the sweeper", len(dispatches))


def _ensure_publisher() -> None:
    global _publisher, _started_in
    if _started_in == os.getpid() and _publisher.is_alive():
        return
    with _lock:
        if _started_in == os.getpid() and _publisher.is_alive():
            return
        _publisher = threading.Thread(target=_publish_forever, name="outbox-publisher", daemon=True)
        _publisher.start()
        _started_in = os.getpid()


def _publish_forever() -> None:
    while True:
        dispatches = _pending.get()
        try:
            publish(dispatches)
            db.connection.close()  # this thread's own connection
        except Exception:
            # The rows are in the database; the sweeper hands them over again.
            logger.exception("Publishing %d dispatches failed; the sweeper will hand them over again", len(dispatches))
