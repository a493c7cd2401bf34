"""Browser pages: the dashboard, the review page, a change, a run."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from . import selectors, services
from .lifecycle import ChangeMoved, IllegalTransition
from .models import Change, Run


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "approvals/home.html", {"workflows": selectors.workflow_summaries()})


@require_GET
@login_required
def review(request: HtmxHttpRequest) -> HttpResponse:
    queue = selectors.describe(selectors.review_queue(user=request.user))
    return render(request, "approvals/review.html", {"queue": queue})


@require_GET
@login_required
def change_detail(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    change = get_object_or_404(
        Change.objects.select_related("agent", "run", "workflow", "approver", "rule_set__workflow", "default_rule_set"),
        pk=change_id,
    )
    context = {
        "item": selectors.describe([change])[0],
        "events": selectors.change_events(change),
        "can_review": services.can_review(request.user, change) and change.status in selectors.REVIEWABLE,
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


@require_POST
@login_required
def approve(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    change = get_object_or_404(Change.objects.select_related("workflow"), pk=change_id)
    return _decide(request, change, lambda: services.approve_change(change=change, user=request.user), "Approved")


@require_POST
@login_required
def reject(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    change = get_object_or_404(Change, pk=change_id)
    reason = request.POST.get("reason", "")
    return _decide(
        request, change, lambda: services.reject_change(change=change, user=request.user, reason=reason), "Rejected"
    )


def _decide(request, change: Change, decide, done: str) -> HttpResponse:
    try:
        decide()
        messages.success(request, f"{done} change {change.pk}.")
    except services.NotAllowed as exc:
        messages.error(request, str(exc))
    except (ChangeMoved, IllegalTransition) as exc:
        messages.warning(request, f"{exc} Someone else decided it first.")
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "review"
    return redirect(next_url)
