"""Browser pages for routing rules: read them, edit one rule at a time with a dry run, versions.

Each workflow has its rules; the global defaults apply to every workflow. The
same views serve both: `workflow` is the workflow's name, or None for the defaults.
Operators and admins edit; reviewers and record owners read; anyone else gets 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget
from django_htmx.middleware import HtmxDetails

from .. import access
from ..models import RuleSet, Workflow
from .dry_run import dry_run
from .editing import StaleRules, group_names, save_rules
from .engine import latest_rule_set
from .fields import catalogue
from .forms import RuleEditor, draft_from_post, draft_from_rule, edited
from .ruleset import moved, rule_text, toggled, with_rule, without_rule


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


SHOWN_VERSIONS = 30


@dataclass(frozen=True)
class Scope:
    """Whose rules a page shows (a workflow's, or the global defaults) and whether the user may edit them."""

    workflow: Workflow | None
    can_edit: bool

    @property
    def label(self) -> str:
        return f"workflow {self.workflow.name}" if self.workflow else "the global defaults"

    def url(self, name: str, *args) -> str:
        if self.workflow:
            return reverse(f"workflow_{name}", args=[self.workflow.name, *args])
        return reverse(f"default_{name}", args=list(args))


def _scope(request: HtmxHttpRequest, workflow: str | None, *, edit: bool = False) -> Scope:
    """Operators and admins edit; reviewers and owner groups read; everyone else: 404."""
    if not access.may_read_rules(request.user):
        raise Http404("No such rules")
    if edit:
        access.check_may_edit_rules(request.user)
    workflow = get_object_or_404(Workflow, name=workflow) if workflow else None
    return Scope(workflow, access.may_edit_rules(request.user))


def _current(scope: Scope) -> tuple[list[dict], int]:
    current = latest_rule_set(scope.workflow)
    return (current.rules, current.version) if current else ([], 0)


def _find(rules: list[dict], rule_id: str) -> dict:
    rule = next((r for r in rules if r["id"] == rule_id), None)
    if rule is None:
        raise Http404("No such rule")
    return rule


def _rows(scope: Scope, rules: list[dict]) -> list[dict]:
    return [
        {
            "rule": rule,
            "text": rule_text(rule),
            "first": i == 0,
            "last": i == len(rules) - 1,
            "edit_url": scope.url("rule_edit", rule["id"]),
            "toggle_url": scope.url("rule_toggle", rule["id"]),
            "move_url": scope.url("rule_move", rule["id"]),
            "delete_url": scope.url("rule_delete", rule["id"]),
        }
        for i, rule in enumerate(rules)
    ]


def _done(request: HtmxHttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _saved(request: HtmxHttpRequest, saved: RuleSet | None) -> None:
    if saved is None:
        messages.info(request, "Nothing changed, so no new version was saved.")
    else:
        messages.success(request, f"Saved version {saved.version}: {saved.summary}.")


# Pages ---------------------------------------------------------------------------


@require_GET
@login_required
def rules_page(request: HtmxHttpRequest, workflow: str | None = None) -> HttpResponse:
    scope = _scope(request, workflow)
    rules, version = _current(scope)
    defaults = latest_rule_set(None) if scope.workflow else None
    versions = RuleSet.objects.filter(workflow=scope.workflow).select_related("created_by", "workflow")
    context = {
        "scope": scope,
        "version": version,
        "rows": _rows(scope, rules),
        "defaults": [rule_text(r) for r in defaults.rules if r["enabled"]] if defaults else [],
        "versions": versions[:SHOWN_VERSIONS],
        "older": [
            (v, scope.url("rules_version", v)) for v in versions.values_list("version", flat=True)[SHOWN_VERSIONS:]
        ],
        "workflows": Workflow.objects.all() if scope.workflow is None else [],
        "new_url": scope.url("rule_new"),
    }
    return render(request, "approvals/rules.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def rule_edit(request: HtmxHttpRequest, workflow: str | None = None, rule_id: str | None = None) -> HttpResponse:
    """Edit one rule (or add one): the condition builder, a dry run, save as a new version."""
    scope = _scope(request, workflow, edit=True)
    rules, version = _current(scope)
    rule = _find(rules, rule_id) if rule_id else None
    url = scope.url("rule_edit", rule_id) if rule_id else scope.url("rule_new")
    options = {"groups": sorted(group_names()), "other_names": {r["name"].casefold() for r in rules if r is not rule}}
    if request.method == "GET":
        editor = RuleEditor(draft_from_rule(rule, base_version=version), bound=False, url=url, **options)
        return _editor_page(request, scope, rule, editor)

    action = request.POST.get("action", "save")
    draft = draft_from_post(request.POST)
    if action not in ("save", "dry_run"):
        # A builder button (add or remove a row or group, pick a field): show the draft again, unchecked.
        editor = RuleEditor(edited(draft, action), bound=False, url=url, **options)
        return _editor_page(request, scope, rule, editor, partial="editor")
    editor = RuleEditor(draft, bound=True, url=url, **options)
    if not editor.is_valid(rule_id=rule_id):
        response = _editor_page(request, scope, rule, editor, partial="editor", status=422)
        return reswap(retarget(response, "#rule-editor"), "outerHTML settle:0ms") if request.htmx else response
    draft_rules = with_rule(rules, editor.rule)
    if action == "dry_run":
        result = dry_run(workflow=scope.workflow, rules=draft_rules)
        if request.htmx:
            return render(request, "approvals/_dry_run.html", {"result": result, "scope": scope})
        return _editor_page(request, scope, rule, editor, result=result)
    try:
        saved = save_rules(
            workflow=scope.workflow,
            rules=draft_rules,
            user=request.user,
            base_version=editor.form.cleaned_data["base_version"],
        )
    except StaleRules as exc:
        editor.form.add_error(None, str(exc))
        return _editor_page(request, scope, rule, editor, partial="editor", status=422)
    _saved(request, saved)
    return _done(request, scope.url("rules"))


def _editor_page(request, scope, rule, editor, *, partial: str = "", result=None, status: int = 200):
    template = "approvals/rule_edit.html" + (f"#{partial}" if partial and request.htmx else "")
    context = {
        "scope": scope,
        "rule": rule,
        "editor": editor,
        "result": result,
        "action_url": scope.url("rule_edit", rule["id"]) if rule else scope.url("rule_new"),
        "back_url": scope.url("rules"),
        "choices": {key: spec.choices for key, spec in catalogue().items() if spec.choices},
    }
    return render(request, template, context, status=status)


@require_POST
@login_required
def rule_toggle(request: HtmxHttpRequest, workflow: str | None = None, rule_id: str = "") -> HttpResponse:
    """Turn a rule on or off: a new version, at once (the kill switch for one bad rule)."""
    scope = _scope(request, workflow, edit=True)
    rules, _ = _current(scope)
    _find(rules, rule_id)
    return _save_from_list(request, scope, toggled(rules, rule_id))


@require_POST
@login_required
def rule_move(request: HtmxHttpRequest, workflow: str | None = None, rule_id: str = "") -> HttpResponse:
    scope = _scope(request, workflow, edit=True)
    rules, _ = _current(scope)
    _find(rules, rule_id)
    by = -1 if request.POST.get("by") == "up" else 1
    return _save_from_list(request, scope, moved(rules, rule_id, by))


@require_http_methods(["GET", "POST"])
@login_required
def rule_delete(request: HtmxHttpRequest, workflow: str | None = None, rule_id: str = "") -> HttpResponse:
    """GET: what removing the rule would change (a dry run); POST: remove it."""
    scope = _scope(request, workflow, edit=True)
    rules, version = _current(scope)
    rule = _find(rules, rule_id)
    if request.method == "POST":
        return _save_from_list(request, scope, without_rule(rules, rule_id))
    result = dry_run(workflow=scope.workflow, rules=without_rule(rules, rule_id))
    context = {
        "scope": scope,
        "rule": rule,
        "text": rule_text(rule),
        "version": version,
        "result": result,
        "back_url": scope.url("rules"),
    }
    return render(request, "approvals/rule_delete.html", context)


def _save_from_list(request: HtmxHttpRequest, scope: Scope, rules: list[dict]) -> HttpResponse:
    try:
        base_version = int(request.POST.get("base_version", ""))
    except ValueError:
        base_version = None
    try:
        _saved(request, save_rules(workflow=scope.workflow, rules=rules, user=request.user, base_version=base_version))
    except StaleRules as exc:
        messages.error(request, str(exc))
    return _done(request, scope.url("rules"))


@require_GET
@login_required
def rules_version(request: HtmxHttpRequest, workflow: str | None = None, version: int = 0) -> HttpResponse:
    scope = _scope(request, workflow)
    rule_set = get_object_or_404(
        RuleSet.objects.select_related("created_by", "workflow"), workflow=scope.workflow, version=version
    )
    _, current = _current(scope)
    context = {
        "scope": scope,
        "rule_set": rule_set,
        "current": current,
        "texts": [(r, rule_text(r)) for r in rule_set.rules],
        "back_url": scope.url("rules"),
        "restore_url": scope.url("rules_restore", rule_set.version),
    }
    return render(request, "approvals/rules_version.html", context)


@require_POST
@login_required
def rules_restore(request: HtmxHttpRequest, workflow: str | None = None, version: int = 0) -> HttpResponse:
    """Save an old version's rules as the newest version (audited like any edit)."""
    scope = _scope(request, workflow, edit=True)
    rule_set = get_object_or_404(RuleSet, workflow=scope.workflow, version=version)
    return _save_from_list(request, scope, rule_set.rules)
