"""Undoing: the bridge from approvals to `undo/` (which never imports approvals).

- `services` — the one service the undo pages call, once per action: preview or undo a run (its
  waiting changes rejected too, if the owner asks) or an agent's window; it checks who may, once.
- `scopes` — undo scopes in the product's words (a change, a run, a selection of a run's
  changes, an agent's changes in a time window), and the refusals that need change statuses.
- `forms` — the agent-and-time-window form of the incident page.
- `receivers` — what approvals does when undo reports back (its signals): the changes an undo
  took back or a redo put back; connected in `approvals.apps.ready()`.

- `views`, `urls` — the undo-a-run page (/runs/<id>/undo) and the incident page (/undo-agent/).
  Templates: `templates/approvals/undo_run.html`, `undo_agent.html`. The undo's own pages are undo's.
"""
