"""Registers the demo domain with Countersign, as a user registers their own models."""

from decimal import Decimal

from undo.registry import register

from .models import Customer, Invoice, Refund, Ticket

register(
    Customer,
    name="customer",
    owner_group="support",
    fields={
        "name": "name",
        "tier": "tier",
        "billing_email": "billing email",
        "status": "status",
        "permission_level": "permission level",
    },
    describe=lambda c: f"{c.name} (customer #{c.pk})",
    attributes={"customer_tier": "tier", "customer_status": "status"},
    irreversible_fields=("permission_level",),
    creatable=False,
)
register(
    Ticket,
    name="ticket",
    owner_group="support",
    fields={
        "customer": "customer",
        "subject": "subject",
        "status": "status",
        "tags": "tags",
        "internal_note": "internal note",
    },
    describe=lambda t: f"ticket #{t.pk} “{t.subject}” of {t.customer.name}",
    attributes={"ticket_status": "status", "customer_tier": "customer.tier"},
    required_on_create=("customer", "subject"),
    select_related=("customer",),
)
register(
    Invoice,
    name="invoice",
    owner_group="finance",
    fields={"amount": "amount", "status": "status"},
    bounds={"amount": (Decimal("0.00"), None)},
    describe=lambda i: f"invoice #{i.pk} of {i.customer.name} ({i.amount})",
    attributes={"invoice_status": "status", "invoice_amount": "amount", "customer_tier": "customer.tier"},
    creatable=False,
    select_related=("customer",),
)
register(
    Refund,
    name="refund",
    owner_group="finance",
    fields={"invoice": "invoice", "amount": "amount", "status": "status"},
    # A refund gives money back: it is never zero or negative.
    bounds={"amount": (Decimal("0.01"), None)},
    describe=lambda r: f"refund #{r.pk} of {r.amount} on invoice #{r.invoice_id}",
    # Rules read the customer behind a refund too ("anything touching a VIP customer").
    attributes={"refund_status": "status", "refund_amount": "amount", "customer_tier": "invoice.customer.tier"},
    # Money that left cannot be called back: issuing a refund always needs a person.
    irreversible=True,
    required_on_create=("invoice", "amount"),
)
