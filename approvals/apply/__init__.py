"""Applying: writing approved changes to the records, in Celery workers.

- `services` — handing queued changes to the workers (through the outbox, `countersign/outbox/`),
  claiming them under a renewed lease, writing each atomically through `undo.apply`, conflicts and
  retries, and the sweeper of claims whose worker died. The Celery tasks that call it are in
  `approvals/tasks.py`.
"""
