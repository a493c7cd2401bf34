"""The undo pages approvals adds: undo a run (or the changes of it ticked on its page), and
undo what an agent (version) did in a time window. Both preview on GET and undo on POST."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_http_methods
from django_htmx.middleware import HtmxDetails

from undo import services as undo_services
from undo.scopes import NothingToUndo
from undo.views import record_choices, refused

from .. import access
from ..models import Run
from . import services
from .forms import AgentWindowForm


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


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
        if request.method == "POST":
            # The waiting changes the preview listed, if the owner kept "also reject them" ticked.
            listed = _change_ids(request.POST.getlist("waiting")) if request.POST.get("reject_waiting") else None
            undo, rejected = services.undo_run(
                run=run, change_ids=change_ids, user=request.user, reject=listed or [], **record_choices(request.POST)
            )
            messages.success(request, capfirst(f"{undo}: {undo.get_status_display()}."))
            if rejected is not None:
                _say_what_was_rejected(request, rejected)
            if undo_services.runs_in_request(undo) and (undo.conflicts_left or undo.skipped_count):
                return redirect(undo.get_absolute_url())  # it lists what stayed, and why
            return redirect(back)
        target, preview = services.preview_run_undo(run=run, change_ids=change_ids, user=request.user)
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
@access.member_required
def undo_agent(request: HtmxHttpRequest) -> HttpResponse:
    """The incident scope: everything an agent (version) did in a time window."""
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = AgentWindowForm(data)
    preview = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        agent_window = {
            "name": data["agent"],
            "version": data["version"],
            "since": data["since"],
            "until": data["until"],
            "record_type": data["record_type"],
        }
        try:
            if request.method == "POST":
                undo = services.undo_agent(user=request.user, **agent_window, **record_choices(request.POST))
                return redirect(undo.get_absolute_url())
            _, preview = services.preview_agent_undo(user=request.user, **agent_window)
        except services.NotAllowed as exc:
            hint = (
                " To undo only the records you own, choose them under Records."
                if exc.owned and not data["record_type"]
                else ""
            )
            form.add_error(None, f"{exc}{hint}")
            return render(request, "approvals/undo_agent.html", {"form": form}, status=403)
        except (NothingToUndo, undo_services.UndoRefused) as exc:
            form.add_error(None, str(exc))
    status = 422 if form.is_bound and form.errors else 200
    return render(request, "approvals/undo_agent.html", {"form": form, "preview": preview}, status=status)
