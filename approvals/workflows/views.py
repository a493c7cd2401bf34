"""Browser pages: the dashboard, a workflow and its kill switch, a change, a run, and what a
record's page says of its changes.

A workflow's page shows its state, counts, runs, automatic pause, runbook and events; operators
and admins pause and resume it there or from the dashboard, stop every workflow at once, and edit
its automatic pause and runbook. The review queue is in `review.views`, undoing in
`undoing.views`. A record's page (values, changes proposed on it, timeline, restore) is undo's;
approvals adds the changes section."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from undo import registry
from undo import selectors as undo_selectors

from .. import access
from ..lifecycle import WAITING, Actor
from ..models import AutoPause, Change, Workflow
from ..review import items
from ..undoing import scopes as undo_scopes
from . import selectors, services
from .auto_pause import readings as auto_pause_readings
from .forms import AutoPauseForm, PauseForm, ResumeForm, RunbookForm


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@access.member_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    context = {
        "workflows": selectors.workflow_summaries(),
        "may_pause": access.may_pause(request.user),
        "reason_max": services.REASON_MAX,
    }
    return render(request, "approvals/home.html", context)


# A workflow and its kill switch ------------------------------------------------------------


@require_GET
@login_required
def workflow_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    return _workflow_page(request, access.get_workflow_for(request, name))


def _workflow_page(request: HtmxHttpRequest, workflow: Workflow, status: int = 200, **sent_back) -> HttpResponse:
    """The workflow's page; `sent_back` forms (with their errors) replace the blank ones."""
    may_pause = access.may_pause(request.user)
    auto_pause = AutoPause.objects.filter(workflow=workflow).first()
    jobs = selectors.runbook(workflow)
    context = {
        "workflow": workflow,
        "may_pause": may_pause,
        "counts": selectors.workflow_counts(workflow),
        "runs": selectors.recent_runs(workflow),
        "auto_pause": auto_pause,
        "readings": auto_pause_readings(workflow) if auto_pause and auto_pause.enabled else [],
        "runbook": jobs,
        "runbook_problems": [j for j in jobs if not j.ok],
        "pause_moment": selectors.pause_moment(workflow),
        "held": selectors.held_changes(workflow) if workflow.is_paused else [],
        "resumption": None if workflow.is_paused else selectors.last_resumption(workflow),
        "events": selectors.workflow_events(workflow),
        "reason_max": services.REASON_MAX,
    }
    context["held_total"] = next(c.total for c in context["counts"] if c.key == "held")
    if may_pause:
        context["pause_form"] = sent_back.get("pause_form") or PauseForm()
        context["resume_form"] = sent_back.get("resume_form") or ResumeForm()
        context["auto_pause_form"] = sent_back.get("auto_pause_form") or (
            AutoPauseForm(instance=auto_pause) if auto_pause else None
        )
        context["runbook_form"] = sent_back.get("runbook_form") or RunbookForm(workflow=workflow)
    return render(request, "approvals/workflows/workflow_detail.html", context, status=status)


def _acting_on(request: HttpRequest, name: str) -> Workflow:
    """The workflow, for operators and admins: 404 to those who may not see it, 403 to the rest."""
    workflow = access.get_workflow_for(request, name)
    access.check_may_pause(request.user)
    return workflow


def _back(request: HttpRequest, workflow: Workflow) -> HttpResponse:
    """Back where the form was (the dashboard or the workflow's page), if that is a local address."""
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(next_url)
    return redirect(workflow.get_absolute_url())


@require_POST
@login_required
def workflow_pause(request: HtmxHttpRequest, name: str) -> HttpResponse:
    workflow = _acting_on(request, name)
    form = PauseForm(request.POST)
    if not form.is_valid():
        return _workflow_page(request, workflow, status=422, pause_form=form)
    actor = Actor.person(request.user)
    outcome = services.pause_workflow(workflow=workflow, actor=actor, reason=form.cleaned_data["reason"])
    (messages.info if outcome.already else messages.success)(request, outcome.sentence())
    return _back(request, workflow)


@require_POST
@login_required
def workflow_resume(request: HtmxHttpRequest, name: str) -> HttpResponse:
    workflow = _acting_on(request, name)
    if not workflow.is_paused:
        messages.info(request, f"{workflow.name} is running: there was nothing to resume.")
        return _back(request, workflow)
    form = ResumeForm(request.POST)
    form.is_valid()  # one optional checkbox: always valid
    outcome = services.resume_workflow(
        workflow=workflow, actor=Actor.person(request.user), to_review=form.cleaned_data["to_review"]
    )
    messages.success(request, f"Resumed {workflow.name}. {outcome.sentence()} {outcome.next_step()}")
    return _back(request, workflow)


@require_POST
@login_required
def workflow_auto_pause(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Turn the automatic pause on (with the defaults), or save its thresholds."""
    workflow = _acting_on(request, name)
    actor = Actor.person(request.user)
    current = AutoPause.objects.filter(workflow=workflow).first()
    if current is None or request.POST.get("turn_on"):
        services.set_auto_pause(workflow=workflow, actor=actor, values=None if current is None else {"enabled": True})
        messages.success(request, f"The automatic pause of {workflow.name} is on.")
        return redirect(workflow.get_absolute_url())
    form = AutoPauseForm(request.POST, instance=current)
    if not form.is_valid():
        return _workflow_page(request, workflow, status=422, auto_pause_form=form)
    changed = services.set_auto_pause(workflow=workflow, actor=actor, values=form.cleaned_data)
    messages.success(request, f"Saved the automatic pause: {', '.join(changed)}." if changed else "Nothing changed.")
    return redirect(workflow.get_absolute_url())


@require_POST
@login_required
def workflow_runbook(request: HtmxHttpRequest, name: str) -> HttpResponse:
    workflow = _acting_on(request, name)
    form = RunbookForm(request.POST, workflow=workflow)
    if not form.is_valid():
        return _workflow_page(request, workflow, status=422, runbook_form=form)
    changed = services.set_runbook(
        workflow=workflow, actor=Actor.person(request.user), people=form.people(), notes=form.cleaned_data["notes"]
    )
    messages.success(request, f"Saved the runbook: {'; '.join(changed)}." if changed else "Nothing changed.")
    return redirect(workflow.get_absolute_url())


@require_http_methods(["GET", "POST"])
@access.member_required
def stop_all(request: HtmxHttpRequest) -> HttpResponse:
    """ "Stop all agents": a confirmation saying what it does, then every running workflow paused."""
    access.check_may_pause(request.user)
    form = PauseForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        paused = services.stop_all(actor=Actor.person(request.user), reason=form.cleaned_data["reason"])
        held = sum(len(p.held) for p in paused if not p.already)
        names = ", ".join(p.workflow.name for p in paused)
        if paused:
            messages.success(
                request,
                f"Stopped {len(paused)} workflow{'s' if len(paused) != 1 else ''} ({names}); "
                f"{held} queued change{'s' if held != 1 else ''} held. New proposals are recorded and held.",
            )
        else:
            messages.info(request, "Every workflow was already paused: nothing more was done.")
        return redirect("home")
    running = list(Workflow.objects.filter(state=Workflow.State.RUNNING).order_by("name"))
    context = {"form": form, "running": running, "paused": Workflow.objects.filter(state=Workflow.State.PAUSED)}
    return render(request, "approvals/workflows/stop_all.html", context, status=422 if form.is_bound else 200)


@require_GET
@login_required
@vary_on_headers("HX-Request")
def change_detail(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    related = ("agent", "run", "workflow", "approver", "rule_set__workflow", "default_rule_set")
    change = access.get_change_for(request, change_id, queryset=Change.objects.select_related(*related))
    item = items.review_items([change], user=request.user)[0]
    if request.htmx:
        # The item alone, e.g. when a reviewer cancels a correction in the queue.
        return render(request, "approvals/_review_item.html", {"item": item, "here": request.htmx.current_url_abs_path})
    context = {
        "item": item,
        "events": selectors.change_events(change),
        "approvals": change.approvals.select_related("reviewer"),
        "deliveries": change.callback_deliveries.all()[:20],
        "versions": selectors.versions(change),
        "can_undo": change.status == Change.Status.APPLIED and access.may_undo(request.user, [change.record_type]),
    }
    return render(request, "approvals/change_detail.html", context)


RUN_FIRST_SCREEN = 10


@require_GET
@login_required
def run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = access.get_run_for(request, run_id)
    show = request.GET.get("show", "")
    if show not in selectors.RUN_FILTERS:
        show = ""
    changes = selectors.run_changes(run, show=show)
    # A first screen of changes; the whole list, 50 a page, on demand.
    show_all = request.GET.get("all") == "1"
    page = Paginator(changes, 50 if show_all else RUN_FIRST_SCREEN).get_page(request.GET.get("page") if show_all else 1)
    # The undos before the counts: an undo read as finished had marked its changes undone in
    # earlier commits, so the counts read next include them. The other way round, a page could
    # show an undo done (its bar no longer polling) beside counts from before its last chunk.
    undos = undo_selectors.undos_for_run(run.pk)
    record_types = undo_scopes.record_types_of_run(run)
    counts = selectors.run_counts(run)
    context = {
        "run": run,
        "counts": counts,
        "waiting_review": sum(c.n for c in counts if c.status in WAITING),
        "filters": selectors.RUN_FILTERS,
        "show": show,
        "page": page,
        "show_all": show_all,
        "changes": selectors.describe(list(page)),
        "record_types": record_types,
        "can_undo": bool(record_types) and access.may_undo(request.user, record_types),
        "owners": sorted({registry.get(t).owner_group for t in record_types}),
        "undos": undos,
    }
    context["runbook"] = jobs = selectors.runbook(run.workflow, record_types or None)
    context["runbook_problems"] = [j for j in jobs if not j.ok]
    return render(request, "approvals/run_detail.html", context)


# A governed record's page is undo's: approvals adds the changes proposed on it.


@require_GET
@login_required
def record_changes(request: HttpRequest, record_type: str, record_id: int) -> HttpResponse:
    """The old address of a record's changes: they are on the record's page now."""
    rtype, _ = access.get_record_for(request, record_type, record_id)
    return redirect("record_detail", rtype.name, record_id)


def record_changes_section(request: HttpRequest, record_type: str, record_id: int) -> str:
    """The record page's "Changes proposed on it" (undo.host.set_record_section): whoever sees the
    record sees every change proposed on it (they own its record type, or see all)."""
    changes = selectors.changes_on_record(record_type, record_id)
    return render_to_string("approvals/_record_changes.html", {"changes": changes}, request=request)
