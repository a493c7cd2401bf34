"""Browser pages: the dashboard, a change, a run. The review queue is in `views_review`."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from . import queue, selectors
from .models import Change, Run


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
    }
    return render(request, "approvals/change_detail.html", context)


@require_GET
@login_required
def run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("agent", "workflow"), pk=run_id)
    changes = selectors.describe(
        list(run.changes.select_related("rule_set__workflow", "default_rule_set").order_by("id")[:200])
    )
    return render(
        request, "approvals/run_detail.html", {"run": run, "counts": selectors.run_counts(run), "changes": changes}
    )
