"""Signals for the app that owns changes (approvals), so undo never imports it.

Both are sent inside the transaction that wrote the records, once per chunk:
a receiver's writes commit or roll back with them.
"""

from django.dispatch import Signal

# kwargs: undo (undo.models.Undo), change_ids (list[int]), user (the person, or None)
changes_undone = Signal()
# The same, for a redo: these changes are in effect again.
changes_redone = Signal()
