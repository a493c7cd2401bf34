"""Browser pages: the dashboard, a change, a run, and undoing them. The review queue is in `review.views`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from undo import preview as undo_preview
from undo import registry
from undo import selectors as undo_selectors
from undo import services as undo_services
from undo.scopes import NothingToUndo
from undo.views import record_choices, refused

from . import selectors
from .models import WAITING, Change, Run
from .review import queue
from .undoing import scopes as undo_scopes
from .undoing.forms import AgentWindowForm


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/home.html", {"workflows": selectors.workflow_summaries()})


@require_GET
@login_required
@vary_on_headers("HX-Request")
def change_detail(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    change = get_object_or_404(
        Change.objects.select_related("agent", "run", "workflow", "approver", "rule_set__workflow", "default_rule_set"),
        pk=change_id,
    )
    item = queue.review_items([change], user=request.user)[0]
    if request.htmx:
        # The item alone, e.g. when a reviewer cancels a correction in the queue.
        return render(request, "approvals/_review_item.html", {"item": item, "here": request.htmx.current_url_abs_path})
    context = {
        "item": item,
        "events": selectors.change_events(change),
        "approvals": change.approvals.select_related("reviewer"),
        "deliveries": change.callback_deliveries.all()[:20],
        "versions": selectors.versions(change),
        "can_undo": change.status == Change.Status.APPLIED
        and undo_services.may_undo(request.user, [change.record_type]),
    }
    return render(request, "approvals/change_detail.html", context)


RUN_FIRST_SCREEN = 10


@require_GET
@login_required
def run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("agent", "workflow"), pk=run_id)
    show = request.GET.get("show", "")
    if show not in selectors.RUN_FILTERS:
        show = ""
    changes = selectors.run_changes(run, show=show)
    # A first screen of changes; the whole list, 50 a page, on demand.
    show_all = request.GET.get("all") == "1"
    page = Paginator(changes, 50 if show_all else RUN_FIRST_SCREEN).get_page(request.GET.get("page") if show_all else 1)
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
        "can_undo": bool(record_types) and undo_services.may_undo(request.user, record_types),
        "owners": sorted({registry.get(t).owner_group for t in record_types}),
        "undos": undo_selectors.undos_for_run(run.pk),
    }
    return render(request, "approvals/run_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def undo_run(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    """Undo a run, or the changes of it ticked on its page (`change`): preview on GET, undo on POST."""
    run = get_object_or_404(Run.objects.select_related("agent", "workflow"), pk=run_id)
    data = request.POST if request.method == "POST" else request.GET
    back = run.get_absolute_url()
    change_ids = _change_ids(data.getlist("change"))
    if change_ids is None:
        message = (
            "The selection is not valid (change numbers only): nothing was undone. Tick the changes on the run's page."
        )
        return refused(request, message, status=400, back=back)
    try:
        target = undo_scopes.for_run(run, change_ids or None)
        undo_services.check_may_undo(request.user, undo_scopes.record_types_of_run(run, change_ids))
        if request.method == "POST":
            # The waiting changes the preview listed, if the owner kept "also reject them" ticked.
            listed = _change_ids(request.POST.getlist("waiting")) if request.POST.get("reject_waiting") else None
            undo, rejected = undo_scopes.undo_run(
                target=target, run=run, user=request.user, reject=listed or [], **record_choices(request.POST)
            )
            messages.success(request, capfirst(f"{undo}: {undo.get_status_display()}."))
            if rejected is not None:
                _say_what_was_rejected(request, rejected)
            if undo_services.runs_in_request(undo) and (undo.conflicts_left or undo.skipped_count):
                return redirect(undo.get_absolute_url())  # it lists what stayed, and why
            return redirect(back)
        preview = undo_preview.preview_undo(scope=target.scope, description=target.description)
    except undo_services.NotAllowed as exc:
        return refused(request, exc, status=403, back=back)
    except (NothingToUndo, undo_services.UndoRefused) as exc:
        return refused(request, exc, status=409, back=back)
    context = {"run": run, "target": target, "preview": preview, "change_ids": change_ids}
    return render(request, "approvals/undo_run.html", context)


def _change_ids(values: list[str]) -> list[int] | None:
    """The ticked change numbers; None when one is not a change number at all."""
    if any(not (v.isascii() and v.isdigit()) or len(v) > 18 for v in values):
        return None
    return sorted({int(v) for v in values})


def _say_what_was_rejected(request: HttpRequest, outcome) -> None:
    if outcome.decided:
        n = len(outcome.decided)
        messages.success(
            request, f"Also rejected {n} change{'s' if n != 1 else ''} of the run still waiting for review."
        )
    for change_id, why in outcome.skipped.items():
        messages.warning(request, f"Change {change_id} still waits for review, not rejected: {why}")


@require_http_methods(["GET", "POST"])
@login_required
def undo_agent(request: HtmxHttpRequest) -> HttpResponse:
    """The incident scope: everything an agent (version) did in a time window."""
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = AgentWindowForm(data)
    preview = None
    if form.is_bound and form.is_valid():
        try:
            data = form.cleaned_data
            target = undo_scopes.for_agent(
                name=data["agent"],
                version=data["version"],
                since=data["since"],
                until=data["until"],
                record_type=data["record_type"],
            )
            undo_services.check_may_undo(request.user, undo_selectors.extent(target.scope).record_types)
            if request.method == "POST":
                undo = undo_services.request_undo(
                    scope=target.scope,
                    description=target.description,
                    user=request.user,
                    **record_choices(request.POST),
                )
                return redirect(undo.get_absolute_url())
            preview = undo_preview.preview_undo(scope=target.scope, description=target.description)
        except undo_services.NotAllowed as exc:
            owns_some = any(
                undo_services.may_undo(request.user, [t]) for t in undo_selectors.extent(target.scope).record_types
            )
            hint = (
                " To undo only the records you own, choose them under Records."
                if owns_some and not data["record_type"]
                else ""
            )
            form.add_error(None, f"{exc}{hint}")
            return render(request, "approvals/undo_agent.html", {"form": form}, status=403)
        except (NothingToUndo, undo_services.UndoRefused) as exc:
            form.add_error(None, str(exc))
    status = 422 if form.is_bound and form.errors else 200
    return render(request, "approvals/undo_agent.html", {"form": form, "preview": preview}, status=status)
