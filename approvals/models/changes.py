"""Changes, their approvals and the records they target.

`Change.status` is written only by `approvals.lifecycle`; see that module for the allowed moves
and the status groups.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models
from django.db.models import lookups
from django.urls import reverse
from django.utils import timezone

from .workflows import Agent, RuleSet, Run, Workflow

# Risk bands, as reviewers filter by them; "high" is what review digests chase.
RISK_BANDS = {"high": (0.7, None), "medium": (0.3, 0.7), "low": (None, 0.3)}
HIGH_RISK = RISK_BANDS["high"][0]


def risk_band(risk: float) -> str:
    return "high" if risk >= RISK_BANDS["high"][0] else "medium" if risk >= RISK_BANDS["medium"][0] else "low"


# `lifecycle.WAITING`, spelled out: lifecycle imports these models, and the migrations froze
# these literals in the review queue's index conditions. tests/approvals/test_lifecycle.py
# checks that the two agree.
_WAITING = ("pending_review", "conflict")


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
            # The automatic pause counts what a workflow applied in the last minutes.
            models.Index(fields=["workflow", "applied_at"], name="change_workflow_applied"),
            # The review queue: only waiting changes, in queue order, so a page is an
            # index range at any depth (an index led by status cannot serve `status IN (…)` in order).
            models.Index(
                fields=["-risk", "created_at", "id"], condition=models.Q(status__in=_WAITING), name="change_waiting"
            ),
            models.Index(
                fields=["review_group", "-risk", "created_at", "id"],
                condition=models.Q(status__in=_WAITING),
                name="change_waiting_group",
            ),
        ]

    def __str__(self):
        return f"change {self.pk} ({self.operation_id})"

    def get_absolute_url(self):
        return reverse("change_detail", args=[self.pk])

    @property
    def is_waiting(self) -> bool:
        return self.status in _WAITING

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
    """`status__in_constants=lifecycle.WAITING`: the constants are written into the SQL instead of bound
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
