"""Workflows, the agents that propose for them, their runs and their routing rule sets."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


def _runbook_person(job: str) -> models.ForeignKey:
    """A runbook's job, held by one named person (or nobody yet)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text=job
    )


class Workflow(models.Model):
    """A named automation ("refund-bot") with an owner, a state and its routing."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        PAUSED = "paused", "paused"

    name = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200, blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    review_wait_threshold = models.PositiveIntegerField(
        default=60,
        help_text="Minutes a high-risk change may wait for review before its group gets a digest email",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The pause in force (set by `workflows.services.pause_workflow`, cleared by resuming):
    # when, who (a person, the automatic pause or an alerting tool: `paused_by_label`) and why.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_by_label = models.CharField(max_length=200, blank=True, default="")
    pause_reason = models.TextField(blank=True, default="")
    # The secret address an alerting tool calls to pause this workflow: only its hash is kept.
    pause_hook_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    pause_hook_prefix = models.CharField(max_length=12, blank=True, default="")
    # The runbook: the people (named, not roles) who do each job when this workflow goes wrong.
    runbook_pauser = _runbook_person("Pauses it when it misbehaves")
    runbook_undo_approver = _runbook_person("Approves undoing its runs")
    runbook_rerunner = _runbook_person("Reruns it after a fix")
    runbook_log_reader = _runbook_person("Reads the logs afterwards")
    runbook_notes = models.TextField(blank=True, default="", help_text="Anything else the people on call should know")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.title or self.name

    def get_absolute_url(self):
        return reverse("workflow_detail", args=[self.name])

    @property
    def is_paused(self) -> bool:
        return self.state == self.State.PAUSED

    def set_pause_hook(self) -> str:
        """Give the workflow a new secret pause address token; returns it (only its hash is kept)."""
        token = "ph_" + secrets.token_urlsafe(32)
        self.pause_hook_hash = hash_token(token)
        self.pause_hook_prefix = token[:10]
        return token


class AutoPause(models.Model):
    """A workflow's automatic pause (circuit breaker): the thresholds that pause it on a bad run.

    Each signal is measured over the last `window_minutes`; a rate needs `min_sample` outcomes
    before it can trip, and is taken over the last `sample_size` of them. A threshold left empty
    is off. Checked by `workflows.auto_pause` after review decisions, apply batches and undos.
    """

    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, related_name="auto_pause")
    enabled = models.BooleanField(default=True)
    window_minutes = models.PositiveIntegerField(default=60, help_text="Minutes of history each rate looks at")
    sample_size = models.PositiveIntegerField(default=20, help_text="A rate is taken over this many latest outcomes")
    min_sample = models.PositiveIntegerField(default=10, help_text="Outcomes needed before a rate can pause")
    max_rejection_pct = models.PositiveSmallIntegerField(
        null=True, blank=True, default=30, help_text="Pause when this share (%) of reviewed changes were rejected"
    )
    max_failure_pct = models.PositiveSmallIntegerField(
        null=True, blank=True, default=20, help_text="Pause when this share (%) of applies failed or conflicted"
    )
    max_undo_pct = models.PositiveSmallIntegerField(
        null=True, blank=True, default=20, help_text="Pause when this share (%) of applied changes were undone"
    )
    max_applied_per_minute = models.PositiveIntegerField(
        null=True, blank=True, default=300, help_text="Pause when more changes than this are applied in a minute"
    )
    max_same_value = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=30,
        help_text="Pause when one field is set to the same value on more records than this …",
    )
    same_value_minutes = models.PositiveIntegerField(default=10, help_text="… within this many minutes")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"automatic pause of {self.workflow.name}"


def hash_token(token: str) -> str:
    # Tokens are long random strings, so one SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


class Agent(models.Model):
    """A program identity with an API token, allowed to propose for its workflows and record types."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=50, default="1")
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=12, default="", help_text="First characters, to recognise a token")
    workflows = models.ManyToManyField(Workflow, related_name="agents", blank=True)
    record_types = models.JSONField(default=list, blank=True, help_text="Record type names it may propose for")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    callback_url = models.URLField(
        max_length=500, blank=True, default="", help_text="Where decisions on its changes are POSTed (signed)"
    )
    # A shared secret, not a password: we must compute HMACs with it, so it is
    # stored as is (unlike the token, which is only ever compared by hash).
    callback_secret = models.CharField(max_length=100, blank=True, default="", editable=False)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="agent_name_version")]

    def __str__(self):
        return f"{self.name} v{self.version}"

    def set_token(self, token: str | None = None) -> str:
        """Give the agent a new token; returns it (only its hash is stored)."""
        token = token or "cs_" + secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_prefix = token[:10]
        return token

    def may_propose_for(self, record_type: str) -> bool:
        return record_type in self.record_types

    def set_callback(self, url: str) -> str:
        """Point decision callbacks at `url` with a fresh signing secret; returns the secret."""
        self.callback_url = url
        self.callback_secret = "whsec_" + secrets.token_urlsafe(32) if url else ""
        return self.callback_secret


class Run(models.Model):
    """One execution of a workflow by an agent; groups its proposals."""

    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="runs")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="runs")
    external_id = models.CharField(max_length=200)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["workflow", "external_id"], name="run_external_id_per_workflow")]

    def __str__(self):
        return f"run {self.external_id}"

    def get_absolute_url(self):
        return reverse("run_detail", args=[self.pk])


class RuleSet(models.Model):
    """One saved version of a workflow's routing rules, or of the global defaults (no workflow).

    Versions are immutable: saving rules adds a version, so a change can always
    say which rules decided it. `rules` is an ordered list of
    {"id", "name", "enabled", "condition", "outcome"}, checked by `approvals.rules`.
    """

    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.PROTECT, related_name="rule_sets")
    version = models.PositiveIntegerField()
    rules = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True, default="", help_text="What changed from the previous version")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["workflow_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "version"], name="rule_set_version_per_workflow"),
            # NULLs are distinct in a unique constraint: the defaults need their own.
            models.UniqueConstraint(
                fields=["version"], condition=models.Q(workflow__isnull=True), name="default_rule_set_version"
            ),
        ]

    def __str__(self):
        return f"{self.scope_label} rules v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("rule set versions are immutable; save a new version")
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        if self.workflow_id:
            return reverse("workflow_rules_version", args=[self.workflow.name, self.version])
        return reverse("default_rules_version", args=[self.version])

    @property
    def scope_label(self) -> str:
        return self.workflow.name if self.workflow_id else "global defaults"
