"""Undoing: the bridge from approvals to `undo/` (which never imports approvals).

- `scopes` — undo scopes in the product's words (a change, a run, a selection of a run's
  changes, an agent's changes in a time window), and undoing a run with its waiting changes rejected.
- `forms` — the agent-and-time-window form of the incident page.
- `receivers` — what approvals does when undo reports back (its signals): the changes an undo
  took back or a redo put back; connected in `approvals.apps.ready()`.

The undo pages of a run and of an agent are in `approvals/views.py` for now.
"""
