"""The demo app's admin: it stands for the team's own application, where people edit records too.

Owners (staff with the model's permissions: support for customers and tickets, finance for
invoices and refunds) edit records here; simple-history records who, so an undo sees their
edit as someone else's. Agents never come here: their only way to a record is a proposal
through Countersign's API and the apply path.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from undo import registry

from .models import Customer, Invoice, Refund, Ticket


class RecordAdmin(admin.ModelAdmin):
    """A person's edits, snapshotted with their name; never a hard delete."""

    readonly_fields = ("deleted_at", "deleted_by", "deleted_reason")
    list_per_page = 50

    def get_queryset(self, request):
        # Soft-deleted records too: a person may still look at (and fix) them.
        return self.model.all_objects.get_queryset()

    def has_delete_permission(self, request, obj=None):
        # Governed records are soft-deleted and restored through Countersign: a hard delete
        # would cut a record away from the history its undos and restores read.
        return False

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        obj._change_reason = "edited in the demo app's admin"
        super().save_model(request, obj, form, change)

    def view_on_site(self, obj):
        # "View on site": the record's page in Countersign, its timeline and restore.
        rtype = registry.for_model(type(obj))
        return reverse("record_detail", args=[rtype.name, obj.pk]) if rtype else None


@admin.register(Customer)
class CustomerAdmin(RecordAdmin):
    list_display = ("id", "name", "tier", "billing_email", "status", "deleted_at")
    search_fields = ("name", "billing_email")
    list_filter = ("tier", "status")


@admin.register(Ticket)
class TicketAdmin(RecordAdmin):
    list_display = ("id", "subject", "customer", "status", "tags", "deleted_at")
    list_select_related = ("customer",)
    search_fields = ("subject", "tags")
    list_filter = ("status",)
    raw_id_fields = ("customer",)


@admin.register(Invoice)
class InvoiceAdmin(RecordAdmin):
    list_display = ("id", "customer", "amount", "status", "deleted_at")
    list_select_related = ("customer",)
    list_filter = ("status",)
    raw_id_fields = ("customer",)


@admin.register(Refund)
class RefundAdmin(RecordAdmin):
    list_display = ("id", "invoice", "amount", "status", "deleted_at")
    list_filter = ("status",)
    raw_id_fields = ("invoice",)
