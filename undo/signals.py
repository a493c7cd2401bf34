"""Signals for the app that owns changes (approvals), so undo never imports it.

Both are sent inside the transaction that wrote the records, once per chunk:
a receiver's writes commit or roll back with them.
"""

from django.dispatch import Signal

# kwargs: undo (undo.models.Undo), change_ids (list[int]), user (the person, or None)
changes_undone = Signal()
# The same, for a redo: these changes are in effect again.
changes_redone = Signal()
# kwargs: undo. Sent in the transaction that records the undo being asked for, and the one
# that records it finished (done or failed): the app that keeps the audit trail writes its lines.
undo_requested = Signal()
undo_finished = Signal()
