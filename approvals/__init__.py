"""Approvals: agents propose changes, rules route them, people review them, workers apply them.

At the top: `models` (workflows, agents, runs, rule sets; changes, approvals; events, callbacks),
`lifecycle` (the only code that moves a change's status: the transition table, the status
groups), `audit` (the only code that writes the audit trail, in the transaction of what it
records), `access` (who may see and act on changes, runs, records, undos, rules and workflows),
`tasks` (every Celery task, thin wrappers over the services; handed to the workers through the
project's outbox, `countersign/outbox/`), `admin`, `apps`, and `urls` (one include per package).

- `agents/` — the agent-facing side: the HTTP API, intake, callbacks.
- `review/` — the review queue, decisions, the digest, the review pages.
- `apply/` — applying approved changes in workers, and the sweeper of claims whose worker died.
- `workflows/` — the dashboard, the change and run pages, the changes on a record's page, resuming a workflow.
- `rules/` — routing rules, their engine and their editor.
- `undoing/` — the bridge to `undo/`: scopes, one service the undo pages call, the pages, undo's signal receivers.

The agent client is not here: it is `clients/python/` (`countersign_client`).
"""
