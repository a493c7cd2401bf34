"""The demo domain: records an agent changes. Knows nothing of Countersign;
`demo/governed.py` registers these models the way a user registers their own."""

from __future__ import annotations

from django.db import models


class LiveManager(models.Manager):
    """Hides soft-deleted records from normal views."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class SoftDeletable(models.Model):
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.CharField(max_length=200, blank=True, default="")
    deleted_reason = models.TextField(blank=True, default="")

    objects = LiveManager()
    all_objects = models.Manager()  # noqa: DJ012  (ruff reads a plain Manager as a field)

    class Meta:
        abstract = True
        base_manager_name = "all_objects"


class Customer(SoftDeletable):
    class Tier(models.TextChoices):
        STANDARD = "standard", "standard"
        VIP = "vip", "VIP"
        ENTERPRISE = "enterprise", "enterprise"

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        SUSPENDED = "suspended", "suspended"
        CLOSED = "closed", "closed"

    class PermissionLevel(models.TextChoices):
        VIEWER = "viewer", "viewer"
        EDITOR = "editor", "editor"
        ADMIN = "admin", "admin"

    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.STANDARD)
    billing_email = models.EmailField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    permission_level = models.CharField(max_length=20, choices=PermissionLevel.choices, default=PermissionLevel.VIEWER)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.name


class Ticket(SoftDeletable):
    class Status(models.TextChoices):
        OPEN = "open", "open"
        PENDING = "pending", "pending"
        RESOLVED = "resolved", "resolved"
        CLOSED = "closed", "closed"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="tickets")
    subject = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    tags = models.CharField(max_length=500, blank=True, default="", help_text="Space-separated")
    internal_note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.subject


class Invoice(SoftDeletable):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        SENT = "sent", "sent"
        PAID = "paid", "paid"
        OVERDUE = "overdue", "overdue"
        VOID = "void", "void"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SENT)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Invoice {self.pk}"


class Refund(SoftDeletable):
    class Status(models.TextChoices):
        REQUESTED = "requested", "requested"
        ISSUED = "issued", "issued"
        DECLINED = "declined", "declined"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Refund {self.pk}"
