"""Workflows, runs and changes as people see them: the dashboard, the pages of a change, a run, a record.

- `services` — a workflow's state: resuming a paused workflow routes what it held again
  (the admin calls it; the kill switch will too).
- `auto_pause` — the automatic pause (circuit breaker): five signals read from the audit trail and
  the changes, checked after apply batches, review decisions and undos (never at intake); crossing
  one pauses the workflow with the reason in numbers. `readings(workflow)` for its page.
- `alerts` — the pause alert: every pause emails the runbook's people and the owner, once.
- `selectors` — reading changes, runs and workflows for pages: summaries, a run's changes and
  counts, a change's events and the record versions it wrote.
- `views`, `urls` — the dashboard (/), a change (/changes/<id>/), a run (/runs/<id>/), and the
  changes proposed on a governed record (/records/<type>/<id>/changes/; the record's own page is
  undo's). Templates: `templates/approvals/home.html`, `change_detail.html`, `run_detail.html`,
  `record_detail.html`.
"""
