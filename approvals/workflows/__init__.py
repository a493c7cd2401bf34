"""Workflows, runs and changes as people see them: the dashboard, a workflow's page and its kill
switch, the pages of a change, a run, a record.

- `services` — a workflow's state: pausing holds what was on its way to the records, resuming
  routes what it held again; "Stop all agents"; a workflow's automatic pause settings and runbook.
- `auto_pause` — the automatic pause (circuit breaker): five signals read from the audit trail and
  the changes, checked after apply batches, review decisions and undos (never at intake); crossing
  one pauses the workflow with the reason in numbers. `readings(workflow)` for its page.
- `alerts` — the pause alert: every pause emails the runbook's people and the owner, once.
- `selectors` — reading changes, runs and workflows for pages: summaries, a workflow's counts at
  a glance, its recent runs, what a pause held, what a resume did, its runbook checked job by job,
  the paused workflows; a run's changes and counts, a change's events and the record versions.
- `forms` — pause (a reason), resume, the automatic pause's thresholds, the runbook's people.
- `context_processors` — the banner every page shows while anything is paused.
- `views`, `urls` — the dashboard (/), a workflow (/workflows/<name>/, with pause/, resume/,
  auto-pause/, runbook/), "Stop all agents" (/workflows/stop-all/), a change (/changes/<id>/), a
  run (/runs/<id>/), and the changes proposed on a governed record
  (/records/<type>/<id>/changes/; the record's own page is undo's). Templates:
  `templates/approvals/home.html`, `workflows/workflow_detail.html` (with `_runbook.html`, shared
  with the run page, and `_change_line.html`), `workflows/stop_all.html`, `change_detail.html`,
  `run_detail.html`.
"""
