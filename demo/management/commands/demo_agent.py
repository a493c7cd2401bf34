"""A demo agent: posts a realistic run through the real HTTP API with countersign_client (clients/python)."""

from __future__ import annotations

import os
import random
import time
import urllib.error
import urllib.request
from decimal import Decimal

from countersign_client import ApiError, Client
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from approvals.models import Run
from demo.models import Customer, Invoice, Ticket


class Command(BaseCommand):
    help = "Post a realistic demo run (ticket tagging, resolutions, email fixes, refunds) through the agent API."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default="",
            help="Countersign's address (default: SITE_URL, else where bin/run serves, else the SITE_URL setting)",
        )
        parser.add_argument("--token", default="", help="Agent token (default: the demo agent's, from var/)")
        parser.add_argument("--if-first", action="store_true", help="Do nothing if any run exists already")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, url, token, if_first, seed, **options):
        if if_first and Run.objects.exists():
            self.stdout.write("Demo runs exist already; the demo agent posts nothing.")
            return
        token = token or (settings.VAR_DIR / "demo_agent_token").read_text().strip()
        url = url or _site_url()
        _wait_for(url)
        client = Client(url, token=token)
        rng = random.Random(seed)
        stamp = timezone.now().strftime("%H%M%S")
        try:
            triage = client.propose_batch(workflow="ticket-triage", run=f"triage-{stamp}", changes=_triage(rng, stamp))
            accounts = client.propose_batch(
                workflow="account-sync", run=f"accounts-{stamp}", changes=_emails(rng, stamp)
            )
            refunds = client.propose_batch(workflow="refund-bot", run=f"refunds-{stamp}", changes=_refunds(rng, stamp))
            # The bad one: a confused tagger marks real customers' tickets as spam. Low risk,
            # so the rules let it through — the run to undo from its page.
            bad = client.propose_batch(workflow="ticket-triage", run=f"bad-tags-{stamp}", changes=_spam(rng, stamp))
        except ApiError as exc:
            raise CommandError(f"The API refused the demo run: {exc}") from exc
        for result in (triage, accounts, refunds, bad):
            run = result["run"]
            self.stdout.write(f"Posted run {run['external_id']} ({run['workflow']}): {run['counts']}")


def _site_url() -> str:
    """SITE_URL when it is set; else the address a running bin/run wrote to var/ (it may serve on
    another PORT than this shell knows); else the SITE_URL setting's default."""
    running = settings.VAR_DIR / "site_url"
    if "SITE_URL" not in os.environ and "PORT" not in os.environ and running.exists():
        return running.read_text().strip()
    return settings.SITE_URL


def _wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url.rstrip("/") + "/login/", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise CommandError(f"Countersign does not answer at {url}: {exc}") from exc
            time.sleep(0.3)


def _triage(rng: random.Random, stamp: str) -> list[dict]:
    changes = []
    untagged = list(Ticket.objects.filter(status="open", tags="").select_related("customer")[:200])
    for ticket in rng.sample(untagged, min(30, len(untagged))):
        tag = (
            "billing"
            if "nvoice" in ticket.subject or "harge" in ticket.subject
            else rng.choice(["account", "bug", "login"])
        )
        changes.append(
            {
                "operation_id": f"tag-{ticket.pk}-{stamp}",
                "record_type": "ticket",
                "records": [{"id": ticket.pk, "expected": {"tags": ticket.tags}}],
                "values": {"tags": tag},
                "risk": round(rng.uniform(0.05, 0.3), 2),
                "confidence": round(rng.uniform(0.8, 0.98), 2),
                "reasoning": f"The subject “{ticket.subject}” is about {tag}; tagging routes it to the right team.",
            }
        )
    pending = list(Ticket.objects.filter(status="pending").select_related("customer")[:100])
    for ticket in rng.sample(pending, min(8, len(pending))):
        changes.append(
            {
                "operation_id": f"resolve-{ticket.pk}-{stamp}",
                "record_type": "ticket",
                "records": [
                    {"id": ticket.pk, "expected": {"status": ticket.status, "internal_note": ticket.internal_note}}
                ],
                "values": {"status": "resolved", "internal_note": "Customer confirmed the fix by email."},
                "risk": round(rng.uniform(0.55, 0.8), 2),
                "confidence": round(rng.uniform(0.6, 0.85), 2),
                "reasoning": f"{ticket.customer.name} replied “thanks, works now”; no open questions remain.",
            }
        )
    return changes


def _spam(rng: random.Random, stamp: str) -> list[dict]:
    tickets = list(Ticket.objects.filter(status__in=["open", "pending"]).exclude(tags__contains="spam")[:400])
    return [
        {
            "operation_id": f"spam-{ticket.pk}-{stamp}",
            "record_type": "ticket",
            "records": [{"id": ticket.pk, "expected": {"tags": ticket.tags}}],
            "values": {"tags": "spam"},
            "risk": 0.1,
            "confidence": 0.92,
            "reasoning": "The message was sent from a mail server; automated mail is spam.",
        }
        for ticket in rng.sample(tickets, min(60, len(tickets)))
    ]


def _emails(rng: random.Random, stamp: str) -> list[dict]:
    changes = []
    for customer in rng.sample(list(Customer.objects.all()[:300]), 4):
        domain = customer.billing_email.split("@")[1]
        new = f"invoices@{domain}" if not customer.billing_email.startswith("invoices@") else f"billing@{domain}"
        changes.append(
            {
                "operation_id": f"email-{customer.pk}-{stamp}",
                "record_type": "customer",
                "records": [{"id": customer.pk, "expected": {"billing_email": customer.billing_email}}],
                "values": {"billing_email": new},
                "risk": round(rng.uniform(0.3, 0.7), 2),
                "confidence": round(rng.uniform(0.7, 0.9), 2),
                "reasoning": f"An email signed by {customer.name}'s accounts team asks to send invoices to {new}.",
            }
        )
    return changes


def _refunds(rng: random.Random, stamp: str) -> list[dict]:
    changes = []
    for invoice in rng.sample(list(Invoice.objects.filter(status="paid").select_related("customer")[:200]), 4):
        amount = str((invoice.amount / 4).quantize(Decimal("0.01")))
        changes.append(
            {
                "operation_id": f"refund-{invoice.pk}-{stamp}",
                "record_type": "refund",
                "operation": "create",
                "values": {"invoice": invoice.pk, "amount": amount, "status": "requested"},
                "risk": round(rng.uniform(0.2, 0.6), 2),
                "confidence": round(rng.uniform(0.7, 0.95), 2),
                "reasoning": f"{invoice.customer.name} reported a partial outage; the contract grants 25% back.",
            }
        )
    return changes
