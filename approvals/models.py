"""Workflows, agents, runs, changes and the audit trail.

`Change.status` is written only by `approvals.lifecycle`; see that module for
the allowed moves.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import lookups
from django.urls import reverse
from django.utils import timezone


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

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.title or self.name

    @property
    def is_paused(self) -> bool:
        return self.state == self.State.PAUSED


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


# A change waits for a person in these statuses (a conflict goes back to review).
WAITING = ("pending_review", "conflict")

# Risk bands, as reviewers filter by them; "high" is what review digests chase.
RISK_BANDS = {"high": (0.7, None), "medium": (0.3, 0.7), "low": (None, 0.3)}
HIGH_RISK = RISK_BANDS["high"][0]


def risk_band(risk: float) -> str:
    return "high" if risk >= RISK_BANDS["high"][0] else "medium" if risk >= RISK_BANDS["medium"][0] else "low"


class Change(models.Model):
    """One action an agent proposes on one or more records, applied and undone as one unit."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "proposed"
        AUTO_APPROVED = "auto_approved", "auto-approved"
        PENDING_REVIEW = "pending_review", "waiting for review"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        REFUSED = "refused", "refused"
        HELD = "held", "held (workflow paused)"
        QUEUED = "queued", "queued"
        APPLYING = "applying", "applying"
        APPLIED = "applied", "applied"
        FAILED = "failed", "failed"
        CONFLICT = "conflict", "conflict (record changed)"
        UNDONE = "undone", "undone"

    class Operation(models.TextChoices):
        UPDATE = "update", "update"
        CREATE = "create", "create"
        SOFT_DELETE = "soft_delete", "soft delete"

    class Decision(models.TextChoices):
        AUTO_APPLY = "auto_apply", "auto-apply"
        REVIEW = "review", "review"
        REFUSE = "refuse", "refuse"

    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="changes")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="changes")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="changes")
    operation_id = models.CharField(max_length=200)
    body_hash = models.CharField(max_length=64)

    record_type = models.CharField(max_length=50)
    record_ids = models.JSONField(default=list, blank=True)
    operation = models.CharField(max_length=20, choices=Operation.choices, default=Operation.UPDATE)
    values = models.JSONField(default=dict, blank=True)
    expected = models.JSONField(default=dict, blank=True, help_text="Per record id: the values the agent saw")
    risk = models.FloatField()
    confidence = models.FloatField()
    reasoning = models.TextField(blank=True, default="")

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    decision = models.CharField(max_length=20, choices=Decision.choices, blank=True, default="")
    decision_explanation = models.TextField(blank=True, default="")
    # The rules that matched, each with the values that made it match (see approvals.rules.Match).
    matched_rules = models.JSONField(default=list, blank=True)
    rule_set = models.ForeignKey(RuleSet, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    default_rule_set = models.ForeignKey(RuleSet, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    review_group = models.CharField(max_length=100, blank=True, default="")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reject_reason = models.TextField(blank=True, default="")
    # `values` stays what the agent proposed; a reviewer's correction is kept
    # beside it, and that is what gets applied (see `values_to_apply`).
    edited_values = models.JSONField(null=True, blank=True, help_text="The reviewer's corrected values, if any")
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    digest_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When a review digest first listed it (each change is listed once)"
    )

    # Applying: a claim is an attempt with a lease; the sweeper retries expired ones.
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    applied_record_ids = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-risk", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "operation_id"], name="change_operation_id_per_agent"),
            models.CheckConstraint(condition=models.Q(risk__gte=0, risk__lte=1), name="change_risk_0_1"),
            models.CheckConstraint(
                condition=models.Q(confidence__gte=0, confidence__lte=1), name="change_confidence_0_1"
            ),
        ]
        indexes = [
            # The sweeper's two questions, indexed over just the changes they concern, so the
            # many changes moving between other statuses (an undo of 100,000) don't maintain them.
            # Queried with `status__in_constants` (see InConstants).
            models.Index(fields=["enqueued_at"], condition=models.Q(status__in=["queued"]), name="change_queued"),
            models.Index(fields=["lease_until"], condition=models.Q(status__in=["applying"]), name="change_applying"),
            models.Index(fields=["run", "status"], name="change_run_status"),
            # The review queue: only waiting changes, in queue order, so a page is an
            # index range at any depth (an index led by status cannot serve `status IN (…)` in order).
            models.Index(
                fields=["-risk", "created_at", "id"], condition=models.Q(status__in=WAITING), name="change_waiting"
            ),
            models.Index(
                fields=["review_group", "-risk", "created_at", "id"],
                condition=models.Q(status__in=WAITING),
                name="change_waiting_group",
            ),
        ]

    def __str__(self):
        return f"change {self.pk} ({self.operation_id})"

    def get_absolute_url(self):
        return reverse("change_detail", args=[self.pk])

    @property
    def is_waiting(self) -> bool:
        return self.status in WAITING

    @property
    def is_edited(self) -> bool:
        return self.edited_values is not None

    @property
    def explanation(self) -> str:
        """Why the change is where it is, in plain words: the rules' decision, and for a held
        change first that its workflow is paused and what resuming it will do."""
        if self.status != self.Status.HELD:
            return self.decision_explanation
        if self.approver_id:
            after = "When it is resumed, the change is queued and a worker applies it: a person approved it."
        else:
            after = "When it is resumed, the rules route it again: it is applied, sent to review or refused."
        return f"Held: the workflow {self.workflow.name} is paused. {after} The rules said: {self.decision_explanation}"

    def values_to_apply(self) -> dict:
        """What a worker writes: the reviewer's correction if there is one, else the agent's proposal."""
        return self.edited_values if self.edited_values is not None else self.values

    @property
    def risk_band(self) -> str:
        return risk_band(self.risk)

    def current_approvals(self, approvals) -> list[Approval]:
        """Those of `approvals` that count: from the latest review round, for the values now proposed."""
        approvals = list(approvals)
        latest = self.updated_at if self.is_waiting else max((a.round for a in approvals), default=None)
        wanted = self.values_to_apply()
        return [a for a in approvals if a.round == latest and a.approved_values == wanted]


class InConstants(lookups.In):
    """`status__in_constants=WAITING`: the constants are written into the SQL instead of bound
    as parameters. SQLite uses a partial index only when the query's condition matches the
    index's literally; with parameters the queue page sorted all 100,000 rows (~200 ms, not ~1 ms)."""

    lookup_name = "in_constants"

    def process_rhs(self, compiler, connection):
        if not all(isinstance(v, str) and re.fullmatch(r"[a-z_]+", v) for v in self.rhs):
            raise ValueError("in_constants takes code constants (lowercase words), never user input")
        return "(" + ", ".join(f"'{v}'" for v in self.rhs) + ")", ()


Change._meta.get_field("status").register_lookup(InConstants)


class Approval(models.Model):
    """One reviewer's approval of one change. A change needing N approvals needs N
    of these, from N different people, for the version (values) now proposed."""

    change = models.ForeignKey(Change, on_delete=models.PROTECT, related_name="approvals")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_values = models.JSONField(help_text="The values this reviewer approved")
    # A change's `updated_at` moves only with its status, so while it waits it says when this
    # review round began; a conflict sends it back for a new round, and old approvals stop counting.
    round = models.DateTimeField(help_text="When the review round this approval belongs to began")
    edited_values = models.JSONField(null=True, blank=True, help_text="Set when this reviewer corrected the values")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["change", "reviewer"], name="one_approval_per_reviewer")]

    def __str__(self):
        return f"{self.reviewer} approved change {self.change_id}"


class ChangeTarget(models.Model):
    """One record a change targets, so that changes waiting on the same record can be found by index."""

    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="targets")
    record_type = models.CharField(max_length=50)
    record_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["change", "record_type", "record_id"], name="change_target_once")
        ]
        indexes = [models.Index(fields=["record_type", "record_id"], name="change_target_record")]

    def __str__(self):
        return f"change {self.change_id} → {self.record_type} #{self.record_id}"

    @classmethod
    def of(cls, changes) -> list[ChangeTarget]:
        return [cls(change_id=c.pk, record_type=c.record_type, record_id=pk) for c in changes for pk in c.record_ids]


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
        RESUMED = "resumed", "workflow resumed"
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

    def __str__(self):
        return self.message

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("events are append-only")
        super().save(*args, **kwargs)
