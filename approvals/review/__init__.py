"""Review: people deciding the changes routed to their group.

- `queue` — reading the review queue: what waits for whom, most urgent first, keyset pages,
  filters, alike changes grouped; who sees every queue.
- `items` — a change as a reviewer reads it (on the queue and on the change page): each record
  from its value now to the proposed one, word diffs, what changed since the agent looked.
- `services` — who may review a change, approving (four-eyes, corrected values), rejecting, in bulk.
- `digest` — the e-mail digest of high-risk changes waiting too long (a Celery beat task).
- `views`, `forms`, `urls` — the review page (/review/) and the approve / reject / edit actions,
  as plain forms and as htmx fragments. Templates in `templates/approvals/`: review, alike_confirm,
  change_edit, _review_item, _review_group.

Approved changes are written by `approvals.apply`.
"""
