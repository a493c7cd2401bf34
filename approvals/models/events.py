"""What was said: the audit trail's events, and the callbacks sent to agents."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from .changes import Change
from .workflows import Agent, Run, Workflow


class CallbackDelivery(models.Model):
    """One decision POSTed (signed) to an agent's callback URL, with every attempt logged."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    change = models.ForeignKey(Change, on_delete=models.PROTECT, related_name="callback_deliveries")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="callback_deliveries")
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    log = models.JSONField(default=list, blank=True, help_text="One entry per attempt: when, HTTP status, error")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "callback deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="callback_due")]

    def __str__(self):
        return f"callback {self.pk} for change {self.change_id} ({self.state})"

    def attempt_log(self) -> list[dict]:
        """Each attempt, first to last: its number, when (a datetime), the HTTP status and any error."""
        return [
            {"number": n, "at": datetime.fromisoformat(entry["at"]), "status": entry["status"], "error": entry["error"]}
            for n, entry in enumerate(self.log, start=1)
        ]


class Event(models.Model):
    """One append-only line of the audit trail, in plain language.

    `actor` is the person who did it, if a person did; `actor_label` names whoever
    did (a person, an agent, or the system) so the line reads on its own.
    Written only by `approvals.audit.write`, in the transaction of what it records.
    """

    class Kind(models.TextChoices):
        """What happened. A change's status move has the kind its move has in `lifecycle.ALLOWED`."""

        # A change moves (from_status and to_status are set).
        PROPOSED = "proposed", "proposed"  # an agent proposed it, the rules routed it
        ROUTED = "routed", "routed again"  # a held change, when its workflow is resumed
        APPROVED = "approved", "approved"  # also one approval of several, with no move
        REJECTED = "rejected", "rejected"
        HELD = "held", "held"
        QUEUED = "queued", "queued"
        CLAIMED = "claimed", "claimed by a worker"
        APPLIED = "applied", "applied"
        CONFLICT = "conflict", "conflict"
        FAILED = "failed", "failed"  # also an undo that failed
        RETRY = "retry", "to retry"
        UNDONE = "undone", "undone"  # also an undo that finished
        REDONE = "redone", "redone"  # also a redo that finished
        # Around changes.
        CORRECTED = "corrected", "corrected"
        CALLBACK = "callback", "agent told"
        UNDO_REQUESTED = "undo_requested", "undo asked for"
        RESTORED = "restored", "record restored"
        PAUSED = "paused", "workflow paused"  # by a person, the automatic pause or an alerting tool
        RESUMED = "resumed", "workflow resumed"
        AUTO_PAUSE_CHANGED = "auto_pause_changed", "automatic pause changed"
        RUNBOOK_CHANGED = "runbook_changed", "runbook changed"
        ALERTED = "alerted", "pause alert sent"
        RULES_CHANGED = "rules_changed", "rules changed"
        DIGEST = "digest", "review digest sent"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    change = models.ForeignKey(Change, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20, blank=True, default="")
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        # The automatic pause counts a workflow's recent decisions and apply outcomes by kind.
        indexes = [models.Index(fields=["workflow", "kind", "created_at"], name="event_workflow_kind")]

    def __str__(self):
        return self.message

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("events are append-only")
        super().save(*args, **kwargs)
