"""Browser pages: the dashboard, a change, a run, and a governed record's changes page.

The review queue is in `review.views`, undoing in `undoing.views`; the record's own page
(timeline, restore) is undo's."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from undo import registry
from undo import selectors as undo_selectors
from undo import services as undo_services

from ..lifecycle import WAITING
from ..models import Change, Run
from ..review import items, queue
from ..review.services import reviewer_groups
from ..undoing import scopes as undo_scopes
from . import selectors


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
        "can_undo": bool(record_types) and undo_services.may_undo(request.user, record_types),
        "owners": sorted({registry.get(t).owner_group for t in record_types}),
        "undos": undos,
    }
    return render(request, "approvals/run_detail.html", context)


# A governed record: its current values, the changes proposed on it, its history.


def _record_for(request: HttpRequest, record_type: str, record_id: int):
    """The record, for people who see its owner group's queue (others get a 404, as if it did not exist)."""
    try:
        rtype = registry.get(record_type)
    except KeyError:
        raise Http404("No such record type") from None
    if not (queue.sees_all_queues(request.user) or rtype.owner_group in reviewer_groups(request.user)):
        raise Http404("No such record")
    instance = rtype.queryset().filter(pk=record_id).first()
    if instance is None:
        raise Http404("No such record")
    return rtype, instance


@require_GET
@login_required
def record_detail(request: HttpRequest, record_type: str, record_id: int) -> HttpResponse:
    rtype, instance = _record_for(request, record_type, record_id)
    names = list(rtype.fields)
    current = rtype.current_values(instance, names)
    history = list(instance.history.select_related("history_user").order_by("-history_date", "-history_id")[:50])
    context = {
        "rtype": rtype,
        "record": instance,
        "title": rtype.describe(instance),
        "fields": [(rtype.fields[n].label, rtype.display(n, current[n])) for n in names],
        "changes": selectors.changes_on_record(rtype.name, instance.pk),
        # Newest first: each snapshot is compared with the one below it (no query per row).
        "history": [
            (row, _what_changed(rtype, row, history[i + 1] if i + 1 < len(history) else row.prev_record))
            for i, row in enumerate(history)
        ],
    }
    return render(request, "approvals/record_detail.html", context)


def _what_changed(rtype: registry.RecordType, row, previous) -> list[str]:
    if previous is None:
        return ["created"]
    said = []
    for name, governed in rtype.fields.items():
        attname = governed.model_field.attname
        old, new = registry.to_json(getattr(previous, attname)), registry.to_json(getattr(row, attname))
        if old != new:
            said.append(f"{governed.label}: {rtype.display(name, old)} → {rtype.display(name, new)}")
    if getattr(row, "deleted_at", None) and not getattr(previous, "deleted_at", None):
        said.append("deleted (soft delete)")
    return said or ["no governed field changed"]
