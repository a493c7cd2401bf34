"""Review: people deciding the changes routed to their group.

- `services` — who may review a change, approving (four-eyes, corrected values), rejecting, in bulk.
"""
