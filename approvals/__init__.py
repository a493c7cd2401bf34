"""Approvals: agents propose changes, rules route them, people review them, workers apply them.

At the top: `models` (agents, workflows, runs, changes, approvals, events, rule sets),
`lifecycle` (the only code that moves a change's status: the transition table), `audit` (the
only code that writes the audit trail, in the transaction of what it records), `tasks` (every
Celery task, thin wrappers over the services), `broker` (publishing to Celery off the request
thread), `admin`, `apps`, and `urls` (one include per package).

- `agents/` — the agent-facing side: the HTTP API, intake, callbacks.
- `review/` — the review queue, decisions, the digest, the review pages.
- `apply/` — applying approved changes in workers, and the sweeper.
- `workflows/` — the dashboard, the change, run and record-changes pages, resuming a workflow.
- `rules/` — routing rules, their engine and their editor.
- `undoing/` — the bridge to `undo/`: scopes, the undo pages, undo's signal receivers.

The agent client is not here: it is `clients/python/` (`countersign_client`).
"""
