"""Approvals' models, by what they hold:

- `workflows` — workflows, the agents that propose for them, their runs, routing rule sets.
- `changes` — changes, their approvals and the records they target.
- `events` — the audit trail's events, and the callbacks sent to agents.

`Change.status` is written only by `approvals.lifecycle`; see that module for the allowed
moves and the status groups.
"""

from .changes import HIGH_RISK, RISK_BANDS, Approval, Change, ChangeTarget, InConstants, risk_band
from .events import CallbackDelivery, Event
from .workflows import Agent, AutoPause, RuleSet, Run, Workflow, hash_token

__all__ = [
    "HIGH_RISK",
    "RISK_BANDS",
    "Agent",
    "Approval",
    "AutoPause",
    "CallbackDelivery",
    "Change",
    "ChangeTarget",
    "Event",
    "InConstants",
    "RuleSet",
    "Run",
    "Workflow",
    "hash_token",
    "risk_band",
]
