"""A dispatch: one piece of background work, kept until a worker has done it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Dispatch(models.Model):
    """A Celery task to run, by name, with JSON arguments.

    Written in the transaction that asks for the work (so the two commit or roll back together),
    handed to the broker after commit, and marked done by the worker once the task returned. Until
    then the sweeper hands it over again: the task must be safe to run twice.
    """

    class State(models.TextChoices):
        PENDING = "pending", "waiting to be handed to the broker"
        SENT = "sent", "handed to the broker"
        DONE = "done", "done"
        FAILED = "failed", "given up"

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # Not run before this; the sweeper counts from it (or from the last hand-over, if later).
    due_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)  # times the broker took it
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "dispatches"
        indexes = [
            # The sweeper's two questions, indexed over just the rows they concern.
            models.Index(fields=["due_at"], condition=models.Q(state__in=["pending", "sent"]), name="dispatch_open"),
            models.Index(fields=["done_at"], condition=models.Q(state="done"), name="dispatch_done"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.args} (#{self.pk})"
