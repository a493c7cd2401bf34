"""Load the demo: records, groups, users, workflows and a demo agent. Safe to run twice."""

from __future__ import annotations

import random
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand
from django.db import transaction
from simple_history.utils import bulk_create_with_history

from approvals.models import Agent, AutoPause, Workflow, hash_token
from approvals.rules import latest_rule_set
from approvals.rules.editing import save_rules
from demo.models import Customer, Invoice, Refund, Ticket
from undo import registry

DEMO_PASSWORD = "countersign-demo"
# username, groups, superuser, what they do
USERS = [
    ("admin", [], True, "admin: everything, incl. users, agents and tokens"),
    ("operator", ["operators"], False, "operator: watches workflows, pauses, edits rules"),
    ("reviewer", ["reviewers"], False, "reviewer: approves or rejects in every queue"),
    ("finance", ["finance"], False, "finance owner: reviews and owns invoices and refunds"),
    ("support", ["support"], False, "support owner: reviews and owns customers and tickets"),
    # The runbooks' people: names, not roles, each in the group its job needs.
    ("maya", ["operators"], False, "maya (operators): pauses the demo workflows"),
    ("chris", ["support"], False, "chris (support): approves undoing ticket and customer changes"),
    ("nina", ["finance"], False, "nina (finance): approves undoing refund changes"),
    ("lee", ["support", "finance"], False, "lee (support, finance): reruns a workflow after a fix"),
    ("sam", ["reviewers"], False, "sam (reviewers): reads the logs afterwards"),
]
WORKFLOWS = [
    ("ticket-triage", "Ticket triage", "support"),
    ("refund-bot", "Refund bot", "finance"),
    ("account-sync", "Account sync", "support"),
]
# Each demo workflow's runbook: who pauses it, approves undoing it, reruns it, reads the logs.
RUNBOOKS = {
    "ticket-triage": ("maya", "chris", "lee", "sam"),
    "refund-bot": ("maya", "nina", "lee", "sam"),
    "account-sync": ("maya", "chris", "lee", "sam"),
}
RUNBOOK_FIELDS = ("runbook_pauser", "runbook_undo_approver", "runbook_rerunner", "runbook_log_reader")


def _rule(rule_id: str, name: str, match: str, rows: list, decision: str = "review", group="", approvals=1) -> dict:
    return {
        "id": rule_id,
        "name": name,
        "enabled": True,
        "condition": {"match": match, "rows": rows},
        "outcome": {"decision": decision, "group": group, "approvals": approvals if decision == "review" else 0},
    }


# The demo's routing. Global defaults, for every workflow: the safety nets.
DEFAULT_RULES = [
    _rule("de000001", "unsure agent", "all", [{"field": "confidence", "op": "lt", "value": 0.6}]),
    _rule("de000002", "several records at once", "all", [{"field": "records", "op": "gt", "value": 1}]),
    _rule("de000003", "risky", "all", [{"field": "risk", "op": "gte", "value": 0.7}]),
    _rule(
        "de000004",
        "key accounts",
        "all",
        [{"field": "attr.customer_tier", "op": "in", "value": ["vip", "enterprise"]}],
    ),
]
# Each demo workflow's own rules. (Refunds always need a person anyway: they cannot be taken back.)
WORKFLOW_RULES = [
    _rule(
        "df000001",
        "big refunds",
        "all",
        [
            {"field": "record_type", "op": "is", "value": "refund"},
            {
                "match": "any",
                "rows": [
                    {"field": "value.amount", "op": "gt", "value": 100},
                    {"field": "attr.refund_amount", "op": "gt", "value": 100},
                ],
            },
        ],
        group="finance",
    ),
    _rule(
        "df000002",
        "permission changes",
        "all",
        [{"field": "fields", "op": "any_of", "value": ["permission_level"]}],
        approvals=2,
    ),
    _rule(
        "df000003",
        "low-risk tagging and notes",
        "all",
        [
            {"field": "record_type", "op": "is", "value": "ticket"},
            {"field": "operation", "op": "is", "value": "update"},
            {"field": "fields", "op": "only", "value": ["tags", "internal_note"]},
            {"field": "risk", "op": "lt", "value": 0.3},
        ],
        decision="auto_apply",
    ),
]

PREFIXES = [
    "Northwind",
    "Northwynd",
    "North Wind",
    "Northwest",
    "Contoso",
    "Contosso",
    "Fabrikam",
    "Globex",
    "Globe X",
    "Initech",
    "Initek",
    "Umbrella",
    "Stark",
    "Wayne",
    "Acme",
    "Acme United",
    "Tyrell",
    "Hooli",
    "Vandelay",
    "Cyberdyne",
    "Oceanic",
    "Pied Piper",
    "Wonka",
    "Gringott",
    "Blue Harbor",
    "Bluewater",
    "Silver Birch",
    "Silverbirch",
    "Redwood",
    "Red Wood",
    "Evergreen",
    "Summit",
    "Pinnacle",
]
TRADES = [
    "Solar",
    "Logistics",
    "Foods",
    "Analytics",
    "Health",
    "Labs",
    "Retail",
    "Energy",
    "Media",
    "Capital",
    "Freight",
    "Dental",
    "Robotics",
    "Textiles",
    "Brewing",
]
LEGAL = ["", "", " Ltd", " Inc.", " GmbH", " LLC", " & Co", " Holdings"]
SUBJECTS = [
    "Invoice shows the wrong amount",
    "Cannot log in after password reset",
    "Refund not received yet",
    "Please update our billing email",
    "Charged twice this month",
    "Export to CSV fails",
    "Need a copy of last invoice",
    "Upgrade to enterprise plan",
    "Delivery arrived damaged",
    "Account suspended by mistake",
    "API rate limit too low",
    "Add a second admin user",
    "VAT number missing on invoice",
    "Cancel my subscription",
    "Report is empty since Monday",
    "Wrong currency on quote",
    "Password reset email never arrives",
    "Two accounts for one company",
]
TAGS = ["billing", "login", "refund", "bug", "sales", "shipping", "account", "urgent", "vat", "api"]


def let_owners_edit_their_records() -> None:
    """The demo app stands for the team's own application, where people edit records too: each
    record type's owner group may add, change and view its records in the demo admin, and
    its members are staff (the admin shows them only what their group may do)."""
    owners = set()
    for rtype in registry.all_record_types():
        group, _ = Group.objects.get_or_create(name=rtype.owner_group)
        name = rtype.model._meta.model_name
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label=rtype.model._meta.app_label,
                codename__in=[f"{action}_{name}" for action in ("add", "change", "view")],
            )
        )
        owners.add(group.name)
    User.objects.filter(groups__name__in=owners, is_staff=False).update(is_staff=True)


class Command(BaseCommand):
    help = "Load the demo records, groups, users, workflows and demo agent (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            made = self.records()
            self.people()
            let_owners_edit_their_records()
            rules = self.rules()
            token = self.agent()
        self.stdout.write(f"Demo data: {made}")
        self.stdout.write(f"Demo rules: {rules}")
        self.stdout.write(f"Demo agent token: {token}")

    def records(self) -> str:
        if Customer.all_objects.exists():
            return "records already loaded"
        rng = random.Random(42)
        names = set()
        while len(names) < 520:
            names.add(f"{rng.choice(PREFIXES)} {rng.choice(TRADES)}{rng.choice(LEGAL)}")
        customers = []
        for name in sorted(names):
            domain = "".join(ch for ch in name.split(" ")[0].lower() if ch.isalnum()) + ".example"
            customers.append(
                Customer(
                    name=name,
                    tier=rng.choices(["standard", "vip", "enterprise"], weights=[80, 12, 8])[0],
                    billing_email=f"{rng.choice(['ap', 'billing', 'accounts', 'finance'])}@{domain}",
                    status=rng.choices(["active", "suspended", "closed"], weights=[92, 5, 3])[0],
                    permission_level=rng.choices(["viewer", "editor", "admin"], weights=[60, 30, 10])[0],
                )
            )
        reason = "created by the demo seed"
        customers = bulk_create_with_history(customers, Customer, default_change_reason=reason)
        customers = list(Customer.all_objects.order_by("id"))
        tickets = [
            Ticket(
                customer=rng.choice(customers),
                subject=rng.choice(SUBJECTS),
                status=rng.choices(["open", "pending", "resolved", "closed"], weights=[45, 20, 25, 10])[0],
                tags=" ".join(sorted(rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2])))),
                internal_note="",
            )
            for _ in range(2100)
        ]
        bulk_create_with_history(tickets, Ticket, default_change_reason=reason)
        invoices = [
            Invoice(
                customer=rng.choice(customers),
                amount=Decimal(rng.randrange(1500, 950000)) / 100,
                status=rng.choices(["draft", "sent", "paid", "overdue", "void"], weights=[5, 30, 50, 12, 3])[0],
            )
            for _ in range(560)
        ]
        bulk_create_with_history(invoices, Invoice, default_change_reason=reason)
        invoices = list(Invoice.all_objects.order_by("id"))
        refunds = []
        for invoice in rng.sample(invoices, 160):
            refunds.append(
                Refund(
                    invoice=invoice,
                    amount=(invoice.amount * Decimal(rng.choice([0.1, 0.25, 0.5, 1]))).quantize(Decimal("0.01")),
                    status=rng.choices(["requested", "issued", "declined"], weights=[40, 45, 15])[0],
                )
            )
        bulk_create_with_history(refunds, Refund, default_change_reason=reason)
        return f"{len(customers)} customers, {len(tickets)} tickets, {len(invoices)} invoices, {len(refunds)} refunds"

    def people(self) -> None:
        for name in ("operators", "reviewers", "finance", "support"):
            Group.objects.get_or_create(name=name)
        for username, groups, superuser, _ in USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_superuser": superuser, "is_staff": superuser}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
            if not user.email:
                # Review digests go to the group's members by e-mail (in the demo: files in var/mail/).
                user.email = f"{username}@countersign-demo.example"
            user.save()
            user.groups.set(Group.objects.filter(name__in=groups))
        for name, title, owner in WORKFLOWS:
            # A digest after ten minutes of waiting, so that trying the demo shows one.
            workflow, _ = Workflow.objects.get_or_create(
                name=name,
                defaults={"title": title, "owner": User.objects.get(username=owner), "review_wait_threshold": 10},
            )
            # The automatic pause with its defaults: it pauses ticket-triage on the demo's bad run.
            AutoPause.objects.get_or_create(workflow=workflow)
            if not any(getattr(workflow, f"{job}_id") for job in RUNBOOK_FIELDS):
                # Filled once: a runbook a person has edited since is theirs.
                for job, username in zip(RUNBOOK_FIELDS, RUNBOOKS[name], strict=True):
                    setattr(workflow, job, User.objects.get(username=username))
                workflow.save(update_fields=list(RUNBOOK_FIELDS))

    def rules(self) -> str:
        """The demo rules, unless a person has edited the rules since (their edit is kept)."""
        saved = []
        scopes = [(None, DEFAULT_RULES)] + [
            (Workflow.objects.get(name=name), WORKFLOW_RULES) for name, _, _ in WORKFLOWS
        ]
        for workflow, rules in scopes:
            latest = latest_rule_set(workflow)
            if latest is not None and latest.created_by_id is not None:
                continue
            if save_rules(workflow=workflow, rules=rules, actor_label="seed_demo") is not None:
                saved.append(workflow.name if workflow else "global defaults")
        return "saved for " + ", ".join(saved) if saved else "already in place"

    def agent(self) -> str:
        """The demo agent's token is kept in var/ so every run prints the same one."""
        path = settings.VAR_DIR / "demo_agent_token"
        agent = Agent.objects.filter(name="demo-agent", version="1.0").first()
        if agent is None:
            agent = Agent(name="demo-agent", version="1.0", record_types=["customer", "ticket", "invoice", "refund"])
        token = path.read_text().strip() if path.exists() else ""
        if not token or agent.token_hash != hash_token(token):
            token = agent.set_token()
            path.write_text(token)
        agent.save()
        agent.workflows.set(Workflow.objects.all())
        return token
