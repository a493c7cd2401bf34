"""Hand work to the broker without making a person or an agent wait on it.

A request that queues changes answers once they are recorded; publishing their tasks happens
on a thread of this process. A broker that is down, or hung (accepting connections and never
answering), then costs that thread its timeouts, never a request. Nothing is lost if a publish
fails, or if the process ends first: the database says what is queued and the sweeper enqueues
it again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Far more than a burst of requests queues; past it, the sweeper does the rest.
_pending: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=10_000)
_lock = threading.Lock()
_started_in: int | None = None  # the process whose publisher thread runs (threads do not survive fork)


def send_soon(publish: Callable[[], None]) -> None:
    """Run `publish` (a call that sends tasks to the broker) on this process's publisher thread.

    Never blocks: when the thread is far behind, `publish` is dropped and the sweeper covers it.
    """
    _ensure_publisher()
    try:
        _pending.put_nowait(publish)
    except queue.Full:
        logger.warning("The broker is far behind; %r is left to the sweeper", publish)


def _ensure_publisher() -> None:
    global _started_in
    if _started_in == os.getpid():
        return
    with _lock:
        if _started_in == os.getpid():
            return
        threading.Thread(target=_publish_forever, name="countersign-publisher", daemon=True).start()
        _started_in = os.getpid()


def _publish_forever() -> None:
    while True:
        publish = _pending.get()
        try:
            publish()
        except Exception:
            # The work is recorded in the database; the sweeper enqueues it again.
            logger.exception("Publishing to the broker failed; the sweeper will enqueue the work again")
