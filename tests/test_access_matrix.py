"""The access matrix: every URL pattern × every persona, and what each is answered.

One row per page or action (a URL pattern may have several rows, e.g. an htmx variant); each
row says the status every persona gets. A URL pattern without a row fails the test, so a new
page cannot be added without saying who may see it. POST cells that refuse (403, 404, or the
login page) must write nothing.

Statuses: 200 ok, 302 a redirect (for "anon", to the login page), 403 refused with a reason,
404 as if the object did not exist, 405 wrong method, 401 the API without a token.

Who sees what (approvals/access.py): admins, operators and reviewers see everything; support owns
customers and tickets, finance invoices and refunds; a person in no group sees only whom to ask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from approvals.models import Approval, AutoPause, Change, Event, RuleSet, Workflow
from demo.models import Invoice, Ticket
from tests.factories import make_agent, make_invoice, make_rule, make_tickets, make_workflow
from tests.undo.conftest import apply_run, propose_run, undo
from undo.models import Undo

PERSONAS = ("admin", "operator", "reviewer", "finance", "support", "outsider", "anon")


def cells(default: int, **overrides: int) -> dict[str, int]:
    """Every persona gets `default` unless named; `anon` is sent to log in unless named."""
    found = {p: default for p in PERSONAS}
    found["anon"] = 302
    found.update(overrides)
    return found


# The usual answers, in words.
MEMBERS = cells(200, outsider=403)  # list pages: a person in no group gets "whom to ask"
SUPPORTS = cells(200, finance=404, outsider=404)  # a ticket's things: support owns them, finance does not
FINANCES = cells(200, support=404, outsider=404)  # an invoice's things
TICKET_OWNERS = cells(200, operator=403, reviewer=403, finance=404, outsider=404)  # restoring tickets
REVIEWERS_OF_SUPPORT = cells(200, operator=403, finance=404, outsider=404)  # deciding a support change
RULE_READERS = cells(200, outsider=404)
RULE_EDITORS = cells(200, reviewer=403, finance=403, support=403, outsider=404)
# The kill switch: every member sees a workflow's page; operators and admins act on it.
WORKFLOW_READERS = cells(200, outsider=404)
PAUSERS = cells(403, admin=302, operator=302, outsider=404)  # pause, resume, its settings: done, then back
STOPPERS = cells(403, admin=200, operator=200)  # "Stop all agents": one in no group gets whom to ask (403)
EVERYONE = {p: 200 for p in PERSONAS}
NOBODY_GETS = {p: 405 for p in PERSONAS}  # a POST-only action asked with GET


@dataclass
class Row:
    name: str  # the URL pattern's name
    url: str
    expect: dict[str, int]
    method: str = "get"
    data: dict = field(default_factory=dict)
    htmx: bool = False
    absent: str = ""  # a refusal never contains this (the item it refuses)


@dataclass
class World:
    users: dict[str, User]
    ticket: Ticket
    invoice: Invoice
    waiting: Change  # a ticket change waiting for support's review
    finance_waiting: Change  # an invoice change waiting for finance's review
    applied_run: int
    undone: Undo
    rule_id: str
    clients: dict[str, Client] = field(default_factory=dict)


def login(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _user(username: str, *groups: str, **fields) -> User:
    user = User.objects.create_user(username=username, password=None, **fields)  # no hashing: fast
    user.groups.set([Group.objects.get_or_create(name=g)[0] for g in groups])
    return user


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """One database for the whole matrix; each cell runs in a savepoint rolled back after it."""
    with django_db_blocker.unblock(), transaction.atomic():
        users = {
            "admin": _user("ada", is_superuser=True, is_staff=True),
            "operator": _user("otto", "operators"),
            "reviewer": _user("rita", "reviewers"),
            "finance": _user("fiona", "finance"),
            "support": _user("sam", "support"),
            "outsider": _user("olga"),
        }
        workflow = make_workflow("ticket-triage")
        RuleSet.objects.create(
            workflow=None, version=1, rules=[make_rule("risky", [{"field": "risk", "op": "gte", "value": 0.9}])]
        )
        agent = make_agent(workflow, name="triage-bot", version="2.3")[0]
        tickets = make_tickets(4)
        invoice = make_invoice()
        undone_run, _ = apply_run(agent, workflow, "r-0", [(tickets[0], {"status": "closed"})])
        undone = undo(users["support"], run_id=undone_run.pk)
        applied_run, _ = apply_run(agent, workflow, "r-1", [(tickets[1], {"status": "resolved"})])
        _, waiting = propose_run(agent, workflow, "r-2", [(t, {"status": "resolved"}) for t in tickets[2:]])
        _, (finance_waiting,) = propose_run(
            agent, workflow, "r-3", [(invoice, {"status": "void"})], review_group="finance"
        )
        yield World(
            users=users,
            ticket=tickets[1],
            invoice=invoice,
            waiting=waiting[0],
            finance_waiting=finance_waiting,
            applied_run=applied_run.pk,
            undone=undone,
            rule_id=workflow.rule_sets.get().rules[0]["id"],
            clients={p: login(users.get(p)) for p in PERSONAS},
        )
        transaction.set_rollback(True)


def rows(w: World) -> list[Row]:
    ticket, invoice, change, run = w.ticket, w.invoice, w.waiting, w.applied_run
    first = ticket.history.order_by("history_id").first().history_id
    latest = ticket.history.order_by("history_id").last().history_id
    undo_id, rule = w.undone.pk, w.rule_id
    alike = urlencode(
        {
            "run": change.run_id,
            "record_type": "ticket",
            "operation": "update",
            "values": json.dumps({"status": "resolved"}),
        }
    )
    waiting_ids = ",".join(str(pk) for pk in Change.objects.filter(run_id=change.run_id).values_list("pk", flat=True))
    item = f'id="change-{change.pk}"'
    workflow = change.workflow
    pause_token = workflow.set_pause_hook()
    workflow.save(update_fields=["pause_hook_hash", "pause_hook_prefix"])
    table = [
        # The site around the app.
        Row("favicon", "/favicon.ico", EVERYONE),
        Row("login", "/login/", EVERYONE),
        Row("logout", "/logout/", cells(302), method="post"),
        Row("logout", "/logout/", NOBODY_GETS),
        # The dashboard, changes, runs.
        Row("home", "/", MEMBERS),
        Row("change_detail", f"/changes/{change.pk}/", SUPPORTS),
        Row("change_detail", f"/changes/{change.pk}/", SUPPORTS, htmx=True),
        Row("change_detail", f"/changes/{w.finance_waiting.pk}/", FINANCES),
        Row("run_detail", f"/runs/{run}/", SUPPORTS),
        Row("run_detail", f"/runs/{w.finance_waiting.run_id}/", FINANCES),
        # A record's page, its old changes address, restoring a version.
        Row("record_detail", f"/records/ticket/{ticket.pk}/", SUPPORTS),
        Row("record_detail", f"/records/invoice/{invoice.pk}/", FINANCES),
        Row("record_detail", "/records/ticket/999999/", cells(404)),
        Row("record_changes", f"/records/ticket/{ticket.pk}/changes/", cells(302, finance=404, outsider=404)),
        Row("record_restore", f"/records/ticket/{ticket.pk}/restore/{first}/", TICKET_OWNERS),
        Row(
            "record_restore",
            f"/records/ticket/{ticket.pk}/restore/{first}/",
            {**TICKET_OWNERS, "admin": 302, "support": 302},
            method="post",
            data={"upto": latest},
        ),
        # Undos.
        Row("undo_list", "/undos/", cells(200, outsider=404)),
        Row("undo_detail", f"/undos/{undo_id}/", SUPPORTS),
        Row("undo_detail", f"/undos/{undo_id}/", SUPPORTS, htmx=True),
        # Polled: a finished undo stops the polling (286); a stale tab is refused, never sent to log in.
        Row("undo_progress", f"/undos/{undo_id}/progress", cells(286, finance=404, outsider=404, anon=403), htmx=True),
        Row("undo_redo", f"/undos/{undo_id}/redo", TICKET_OWNERS),
        Row("undo_redo", f"/undos/{undo_id}/redo", {**TICKET_OWNERS, "admin": 302, "support": 302}, method="post"),
        Row("undo_retry", f"/undos/{undo_id}/retry", {**TICKET_OWNERS, "admin": 302, "support": 302}, method="post"),
        Row("undo_retry", f"/undos/{undo_id}/retry", NOBODY_GETS),
        Row("undo_run", f"/runs/{run}/undo", cells(403, admin=200, support=200)),
        Row("undo_run", f"/runs/{run}/undo", cells(403, admin=302, support=302), method="post"),
        Row("undo_agent", "/undo-agent/", MEMBERS),
        Row("undo_agent", "/undo-agent/", cells(422, outsider=403), method="post"),
        # A workflow's page and its kill switch.
        Row("workflow_detail", "/workflows/ticket-triage/", WORKFLOW_READERS),
        Row("workflow_detail", "/workflows/nowhere/", cells(404)),
        Row(
            "workflow_pause",
            "/workflows/ticket-triage/pause/",
            PAUSERS,
            method="post",
            data={"reason": "tags look wrong"},
        ),
        Row(
            "workflow_pause",
            "/workflows/ticket-triage/pause/",
            {**PAUSERS, "admin": 422, "operator": 422},
            method="post",
        ),
        Row("workflow_pause", "/workflows/ticket-triage/pause/", NOBODY_GETS),
        Row("workflow_resume", "/workflows/ticket-triage/resume/", PAUSERS, method="post", data={"to_review": "on"}),
        Row("workflow_resume", "/workflows/ticket-triage/resume/", NOBODY_GETS),
        Row(
            "workflow_auto_pause", "/workflows/ticket-triage/auto-pause/", PAUSERS, method="post", data={"turn_on": "1"}
        ),
        Row("workflow_auto_pause", "/workflows/ticket-triage/auto-pause/", NOBODY_GETS),
        Row(
            "workflow_runbook",
            "/workflows/ticket-triage/runbook/",
            PAUSERS,
            method="post",
            data={"runbook_pauser": w.users["operator"].pk, "notes": "call otto"},
        ),
        Row("workflow_runbook", "/workflows/ticket-triage/runbook/", NOBODY_GETS),
        Row("stop_all", "/workflows/stop-all/", STOPPERS),
        Row(
            "stop_all",
            "/workflows/stop-all/",
            {**STOPPERS, "admin": 302, "operator": 302},
            method="post",
            data={"reason": "incident"},
        ),
        Row("stop_all", "/workflows/stop-all/", {**STOPPERS, "admin": 422, "operator": 422}, method="post"),
        # The review queue and decisions.
        Row("review", "/review/", MEMBERS),
        Row("review", "/review/", MEMBERS, htmx=True),
        Row("alike", f"/review/alike?{alike}&action=approve", cells(200, operator=403, finance=403, outsider=403)),
        Row("alike", "/review/alike", cells(302), method="post", data={"ids": waiting_ids, "action": "approve"}),
        Row(
            "alike",
            "/review/alike",
            cells(200, operator=403, finance=403, outsider=403),
            method="post",
            data={"ids": waiting_ids, "action": "approve"},
            htmx=True,
        ),
        Row(
            "approve",
            f"/changes/{change.pk}/approve",
            {**REVIEWERS_OF_SUPPORT, "admin": 302, "reviewer": 302, "support": 302},
            method="post",
        ),
        Row("approve", f"/changes/{change.pk}/approve", REVIEWERS_OF_SUPPORT, method="post", htmx=True, absent=item),
        Row("approve", f"/changes/{change.pk}/approve", NOBODY_GETS),
        Row(
            "reject",
            f"/changes/{change.pk}/reject",
            {**REVIEWERS_OF_SUPPORT, "admin": 302, "reviewer": 302, "support": 302},
            method="post",
            data={"reason": "not like this"},
        ),
        Row(
            "reject",
            f"/changes/{change.pk}/reject",
            REVIEWERS_OF_SUPPORT,
            method="post",
            data={"reason": "no"},
            htmx=True,
            absent=item,
        ),
        Row("edit", f"/changes/{change.pk}/edit", REVIEWERS_OF_SUPPORT),
        Row("edit", f"/changes/{change.pk}/edit", REVIEWERS_OF_SUPPORT, htmx=True, absent=item),
        Row(
            "edit",
            f"/changes/{change.pk}/edit",
            {**REVIEWERS_OF_SUPPORT, "admin": 302, "reviewer": 302, "support": 302},
            method="post",
            data={"status": "closed"},
        ),
    ]
    # The kill switch's pause address: operators and admins make one; an alerting tool calls it with
    # no session at all (the secret in the path is its only credential: anyone holding it pauses).
    table += [
        Row(
            "workflow_pause_address",
            "/workflows/ticket-triage/pause-address/",
            cells(403, admin=200, operator=200, outsider=404),
            method="post",
            absent="/hooks/pause/",
        ),
        Row("workflow_pause_address", "/workflows/ticket-triage/pause-address/", NOBODY_GETS),
        Row("pause_hook", f"/hooks/pause/{pause_token}/", EVERYONE, method="post"),
        Row("pause_hook", "/hooks/pause/ph_not-a-pause-address/", {p: 404 for p in PERSONAS}, method="post"),
        Row("pause_hook", f"/hooks/pause/{pause_token}/", NOBODY_GETS),
    ]
    # Routing rules: the same rows for a workflow's rules and for the global defaults.
    for prefix, scope in (("/workflows/ticket-triage/rules/", "workflow"), ("/rules/defaults/", "default")):
        rule_id = rule if scope == "workflow" else RuleSet.objects.get(workflow=None).rules[0]["id"]
        saved = {**RULE_EDITORS, "admin": 302, "operator": 302}
        table += [
            Row(f"{scope}_rules", prefix, RULE_READERS),
            Row(f"{scope}_rule_new", f"{prefix}new", RULE_EDITORS),
            Row(f"{scope}_rule_new", f"{prefix}new", {**RULE_EDITORS, "admin": 422, "operator": 422}, method="post"),
            Row(f"{scope}_rule_edit", f"{prefix}{rule_id}/edit", RULE_EDITORS),
            Row(f"{scope}_rule_toggle", f"{prefix}{rule_id}/toggle", saved, method="post", data={"base_version": 1}),
            Row(f"{scope}_rule_move", f"{prefix}{rule_id}/move", saved, method="post", data={"base_version": 1}),
            Row(f"{scope}_rule_delete", f"{prefix}{rule_id}/delete", RULE_EDITORS),
            Row(f"{scope}_rule_delete", f"{prefix}{rule_id}/delete", saved, method="post", data={"base_version": 1}),
            Row(f"{scope}_rules_version", f"{prefix}versions/1/", RULE_READERS),
            Row(f"{scope}_rules_restore", f"{prefix}versions/1/restore", saved, method="post"),
        ]
    return table


# The agent API answers tokens, not sessions; its schema and docs are public.
API = {
    "api:openapi-json": ("/api/v1/openapi.json", EVERYONE),
    "api:openapi-view": ("/api/v1/docs", EVERYONE),
    "api:post_change": ("/api/v1/changes", {p: 401 for p in PERSONAS}),
    "api:post_batch": ("/api/v1/changes/batch", {p: 401 for p in PERSONAS}),
    "api:get_change": ("/api/v1/changes/1", {p: 401 for p in PERSONAS}),
    "api:get_run": ("/api/v1/runs/1", {p: 401 for p in PERSONAS}),
    "api:get_callback": ("/api/v1/callback", {p: 401 for p in PERSONAS}),
    "api:put_callback": ("/api/v1/callback", {p: 401 for p in PERSONAS}),
    "api:delete_callback": ("/api/v1/callback", {p: 401 for p in PERSONAS}),
    "api:api-root": ("/api/v1/", {p: 404 for p in PERSONAS}),
    "api:": ("/api/v1/nowhere", {p: 404 for p in PERSONAS}),
}


def pattern_names() -> set[str]:
    """Every URL pattern in the URLconf, by its (namespaced) name."""

    def walk(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern):
                yield f"{namespace}:{p.name or ''}" if namespace else p.name

    return set(walk(get_resolver().url_patterns))


def footprint() -> tuple:
    """What a refused action must leave as it was."""
    return (
        Approval.objects.count(),
        Undo.objects.count(),
        RuleSet.objects.count(),
        Event.objects.count(),
        AutoPause.objects.count(),
        sorted(Workflow.objects.values_list("pk", "state", "runbook_pauser_id", "runbook_notes")),
        sorted(Change.objects.values_list("pk", "status")),
        Ticket.history.count(),
        Invoice.history.count(),
    )


def answer(w: World, row: Row, persona: str):
    # One logged-in client per persona for the whole module; logging out ends a session: a new one.
    client = w.clients[persona] if not row.name.endswith("logout") else login(w.users.get(persona))
    extra = {"HTTP_HX_REQUEST": "true"} if row.htmx else {}
    return getattr(client, row.method)(row.url, row.data, **extra)


def check(w: World, row: Row) -> list[str]:
    """What each persona was answered, where it differs from the row (empty: all as expected)."""
    wrong = []
    for persona in PERSONAS:
        with transaction.atomic():
            before = footprint() if row.method == "post" else None
            response = answer(w, row, persona)
            expected, got = row.expect[persona], response.status_code
            body = b"".join(response.streaming_content if response.streaming else [response.content]).decode(
                errors="replace"
            )
            if got != expected:
                wrong.append(f"{persona}: {got}, expected {expected}")
            elif persona == "anon" and got == 302 and "/login/" not in response.url and "logout" not in row.name:
                wrong.append(f"anon: redirected to {response.url}, not to log in")
            elif got in (401, 403, 404) or (persona == "anon" and got == 302):
                if before is not None and footprint() != before:
                    wrong.append(f"{persona}: refused ({got}) but something was written")
                if row.absent and row.absent in body:
                    wrong.append(f"{persona}: refused ({got}) but answered the item")
            transaction.set_rollback(True)
    return wrong


# The admin site: admins only (no other persona is staff); everyone else is sent to its login.
STAFF = cells(302, admin=200)


def admin_rows(w: World) -> list[Row]:
    undo_type = ContentType.objects.get_for_model(Undo).pk
    table = [
        Row("admin:index", "/admin/", STAFF),
        Row("admin:app_list", "/admin/approvals/", STAFF),
        Row("admin:login", "/admin/login/", cells(200, admin=302, anon=200)),
        Row("admin:logout", "/admin/logout/", cells(302), method="post"),
        Row("admin:password_change", "/admin/password_change/", STAFF),
        Row("admin:password_change_done", "/admin/password_change/done/", STAFF),
        Row("admin:jsi18n", "/admin/jsi18n/", STAFF),
        Row("admin:autocomplete", "/admin/autocomplete/", cells(302, admin=403)),
        Row("admin:view_on_site", f"/admin/r/{undo_type}/{w.undone.pk}/", STAFF | {"admin": 302}),
        Row("admin:auth_user_password_change", f"/admin/auth/user/{w.users['support'].pk}/password/", STAFF),
    ]
    for model, model_admin in site._registry.items():
        prefix = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        obj = model._default_manager.order_by("pk").first()
        ok = 200 if obj else 302  # an object that is not there: back to the index, with a message
        pk = obj.pk if obj else 0
        request = RequestFactory().get("/admin/")
        request.user = w.users["admin"]
        may_add, may_delete = model_admin.has_add_permission(request), model_admin.has_delete_permission(request)
        table += [
            Row(f"{name}_changelist", prefix, STAFF),
            Row(f"{name}_add", f"{prefix}add/", cells(302, admin=200 if may_add else 403)),
            Row(f"{name}_change", f"{prefix}{pk}/change/", cells(302, admin=ok)),
            Row(f"{name}_history", f"{prefix}{pk}/history/", cells(302, admin=ok)),
            Row(f"{name}_delete", f"{prefix}{pk}/delete/", cells(302, admin=ok if may_delete else 403)),
            Row("admin:", f"{prefix}{pk}/", cells(302)),  # the old address of the change page
        ]
    return table


def test_every_url_pattern_has_a_row(world):
    covered = {r.name for r in rows(world) + admin_rows(world)} | set(API)
    assert pattern_names() - covered == set(), "Add a row to the access matrix for each new page"


@pytest.mark.django_db
def test_app_pages_and_actions(world):
    wrong = {f"{r.method.upper()} {r.url}{' (htmx)' if r.htmx else ''}": check(world, r) for r in rows(world)}
    assert {url: w for url, w in wrong.items() if w} == {}


@pytest.mark.django_db
def test_the_admin_site_is_for_admins(world):
    wrong = {f"{r.method.upper()} {r.url}": check(world, r) for r in admin_rows(world)}
    assert {url: w for url, w in wrong.items() if w} == {}


@pytest.mark.django_db
def test_the_agent_api_answers_tokens_not_sessions(world):
    wrong = {}
    for name, (url, expect) in API.items():
        method = {"post_change": "post", "post_batch": "post", "put_callback": "put", "delete_callback": "delete"}
        row = Row(name, url, expect, method=method.get(name.removeprefix("api:"), "get"))
        wrong[f"{row.method.upper()} {url}"] = check(world, row)
    assert {url: w for url, w in wrong.items() if w} == {}
