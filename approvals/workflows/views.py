"""Browser pages: the dashboard, a change, a run, and what a record's page says of its changes.

The review queue is in `review.views`, undoing in `undoing.views`. A record's page (values,
changes proposed on it, timeline, restore) is undo's; approvals adds the changes section."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from undo import registry
from undo import selectors as undo_selectors

from .. import access
from ..lifecycle import WAITING
from ..models import Change
from ..review import items
from ..undoing import scopes as undo_scopes
from . import selectors


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@access.member_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/home.html", {"workflows": selectors.workflow_summaries()})


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
