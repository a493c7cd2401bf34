"""Applying: writing approved changes to the records, in Celery workers.

- `services` — handing queued changes to the workers (after commit; the sweeper retries what the
  broker lost), claiming them under a renewed lease, writing each atomically through `undo.apply`,
  conflicts and retries, and the sweeper. The Celery tasks that call it are in `approvals/tasks.py`.
"""
