"""The outbox: background work handed to Celery once, for every part of the project.

- `models` — `Dispatch`: one task to run (its Celery name and JSON arguments), its state and attempts.
- `dispatcher` — `dispatch()` writes a row in the caller's transaction; after commit a thread of the
  process publishes it; the worker marks it done; `sweep()` publishes again what is not done.
- `tasks` — the sweeper's Celery task (Celery beat runs it every few seconds).
- `admin` — the rows, for admins: what waits, what failed and why, and handing it over again.
"""
