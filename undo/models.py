"""Columns that every governed record's history row carries, and the undo itself."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class GovernedHistory(models.Model):
    """Abstract base for historical models of governed records (simple-history `bases=`).

    The ids are plain integers, not foreign keys: `undo` knows nothing of the
    app that proposes changes; it only tags each snapshot with what produced it.
    A row written by an undo carries `cs_undo_id` and no change, run or agent:
    so it never falls inside a change's, run's or agent's scope itself.
    """

    cs_change_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    cs_run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    cs_agent_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    cs_agent_label = models.CharField(max_length=200, blank=True, default="")
    cs_undo_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True


class Undo(models.Model):
    """Reversing a set of writes to governed records, chosen by the tags on their history rows.

    The scope is a filter on history rows: by change ids, run, agents and a time
    window; or the rows another undo wrote (a redo); or the rows of one record
    after one of its versions (restore to that version). Every field is frozen
    when the undo is made, so running it again (after a crash) means the same.
    """

    class Kind(models.TextChoices):
        UNDO = "undo", "undo"
        REDO = "redo", "redo"
        RESTORE = "restore", "restore"

    class Status(models.TextChoices):
        QUEUED = "queued", "waiting for a worker"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.UNDO)
    description = models.CharField(max_length=500, help_text="The scope in plain words")
    scope_key = models.CharField(max_length=500, db_index=True, help_text="Same scope, same key: its undos and redos")

    # The scope: history rows matching every filter given.
    change_ids = models.JSONField(default=list, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    agent_ids = models.JSONField(default=list, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    target = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="redos")
    record_type = models.CharField(max_length=50, blank=True, default="")
    record_id = models.BigIntegerField(null=True, blank=True)
    after_history_id = models.BigIntegerField(null=True, blank=True)
    upto_history_id = models.BigIntegerField(null=True, blank=True)

    record_types = models.JSONField(default=list, blank=True, help_text="Record types the scope touches")
    forced = models.JSONField(
        default=list, blank=True, help_text='Records ("ticket:12") whose conflicts are overwritten'
    )
    skipped = models.JSONField(
        default=list, blank=True, help_text='Records ("ticket:12") the owner chose to leave exactly as they are'
    )
    seen_history = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per record type, the newest history id when the owner saw the preview: forcing stops there",
    )

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    # Progress, in records: the page polls these.
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # What it wrote, counted chunk by chunk in the transaction that wrote it.
    records_reverted = models.PositiveIntegerField(default=0)
    fields_reverted = models.PositiveIntegerField(default=0)
    already_back = models.PositiveIntegerField(default=0)
    conflicts_left = models.PositiveIntegerField(default=0)
    forced_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    conflicts = models.JSONField(default=list, blank=True, help_text="The first conflicts left, in plain words")
    change_ids_done = models.JSONField(default=list, blank=True, help_text="Changes this undo undid (or redid)")
    error = models.TextField(blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}: {self.description}"

    def get_absolute_url(self):
        return reverse("undo_detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def percent(self) -> int:
        if self.is_finished and self.status == self.Status.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def undoes_changes(self) -> bool:
        """True when running this undo takes changes back; False when it puts them back (a redo)."""
        undo, depth = self, 0
        while undo.target_id is not None:
            undo, depth = undo.target, depth + 1
        return depth % 2 == 0

    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
