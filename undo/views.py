"""Browser pages: a record's timeline and restore, an undo's page, progress and redo."""

from __future__ import annotations

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from . import host, registry, selectors, services
from .models import Undo
from .preview import preview_undo
from .scopes import NothingToUndo


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def get_record_for_viewer(request: HttpRequest, record_type: str, record_id: int):
    """(record type, record or None if only its history is left), for people who may see its
    records (`host.may_see`); 404 to others and for unknown records."""
    try:
        rtype = registry.get(record_type)
    except KeyError:
        raise Http404 from None
    if not host.may_see(request.user, [rtype.name]):
        raise Http404
    instance = rtype.queryset().filter(pk=record_id).first()
    if instance is None and not rtype.model.history.filter(id=record_id).exists():
        raise Http404
    return rtype, instance


def get_undo_for_viewer(request: HttpRequest, undo_id: int) -> Undo:
    """The undo, for people who may see the records it touches; 404 to others."""
    undo = Undo.objects.select_related("target", "requested_by").filter(pk=undo_id).first()
    if undo is None or not host.may_see(request.user, undo.record_types):
        raise Http404
    return undo


_RECORD_KEY = re.compile(r"[\w-]+:[0-9]+", re.ASCII)


def record_choices(data) -> dict:
    """The owner's choices on a preview form: `forced` and `skipped` record keys ("ticket:12"),
    and what the preview had `seen` (per record type, its newest history id).

    A record in conflict has `on-<key>`: keep (the default), force or skip; a record that
    would go back may be ticked `skip`; `seen-<type>` is a hidden field. Anything else is ignored.
    """
    forced, skipped = set(), {k for k in data.getlist("skip") if _RECORD_KEY.fullmatch(k)}
    seen, record_types = {}, {t.name for t in registry.all_record_types()}
    for name, value in data.items():
        if name.startswith("seen-") and value.isascii() and value.isdigit() and len(value) <= 18:
            if (record_type := name.removeprefix("seen-")) in record_types:
                seen[record_type] = int(value)
        key = name.removeprefix("on-")
        if key != name and _RECORD_KEY.fullmatch(key):
            if value == "force":
                forced.add(key)
            elif value == "skip":
                skipped.add(key)
    return {"forced": sorted(forced), "skipped": sorted(skipped), "seen": seen}


def refused(request: HttpRequest, exc: Exception, *, status: int, back: str = "") -> HttpResponse:
    """A refusal in plain words, with the way back: never a stack trace."""
    return render(request, "undo/refused.html", {"message": str(exc), "back": back}, status=status)


# A record's page -------------------------------------------------------------------


@require_GET
@login_required
def record_detail(request: HtmxHttpRequest, record_type: str, record_id: int) -> HttpResponse:
    """The record's one page: its values now, what its host says of it (the changes proposed
    on it), and its timeline of versions, each with what changed and a restore."""
    rtype, instance = get_record_for_viewer(request, record_type, record_id)
    names = list(rtype.fields)
    current = rtype.current_values(instance, names) if instance is not None else {}
    context = {
        "rtype": rtype,
        "record": instance,
        "record_id": record_id,
        "label": rtype.describe(instance) if instance is not None else f"{rtype.label} #{record_id}",
        "fields": [(rtype.fields[n].label, rtype.display(n, current[n])) for n in current],
        "host_section": host.record_section(request, rtype.name, record_id),
        "versions": selectors.timeline(rtype, record_id, page=request.GET.get("page", 1)),
        "can_restore": services.may_undo(request.user, [rtype.name]),
    }
    return render(request, "undo/record_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def restore(request: HtmxHttpRequest, record_type: str, record_id: int, history_id: int) -> HttpResponse:
    rtype, instance = get_record_for_viewer(request, record_type, record_id)
    version = get_object_or_404(rtype.model.history, id=record_id, history_id=history_id)
    back = f"{request.path.rsplit('/restore/', 1)[0]}/"
    try:
        services.check_may_undo(request.user, [rtype.name])
    except services.NotAllowed as exc:
        return refused(request, exc, status=403, back=back)
    latest = rtype.model.history.filter(id=record_id).values_list("history_id", flat=True).first()
    upto = _int(request.POST.get("upto")) if request.method == "POST" else latest
    if upto is None or upto < history_id:
        return refused(request, "The form is out of date: open the record's page again.", status=400, back=back)
    scope = services.restore_scope(
        record_type=rtype.name, record_id=record_id, history_id=history_id, upto_history_id=upto
    )
    label = rtype.describe(instance) if instance is not None else f"{rtype.label} #{record_id}"
    description = f"{label} back to its version of {version.history_date:%Y-%m-%d %H:%M:%S}"
    if request.method == "POST":
        try:
            undo = services.request_undo(
                scope=scope,
                description=description,
                user=request.user,
                kind=Undo.Kind.RESTORE,
                **record_choices(request.POST),
            )
        except NothingToUndo:
            return refused(request, "This is already the record's current version: nothing to restore.", status=409)
        except services.UndoRefused as exc:
            return refused(request, exc, status=409, back=back)
        messages.success(request, capfirst(f"{undo}: {undo.get_status_display()}."))
        if undo.conflicts_left or undo.skipped_count or not undo.is_finished:
            return redirect(undo.get_absolute_url())  # what stayed, or the progress
        return redirect(back)
    try:
        preview = preview_undo(scope=scope, description=description)
    except NothingToUndo:
        preview = None
    context = {"rtype": rtype, "label": label, "version": version, "preview": preview, "upto": upto, "back": back}
    return render(request, "undo/restore.html", context)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# Undos -----------------------------------------------------------------------------


@require_GET
@login_required
def undo_list(request: HtmxHttpRequest) -> HttpResponse:
    if not host.may_see(request.user):
        raise Http404
    undos = [u for u in Undo.objects.select_related("target")[:100] if host.may_see(request.user, u.record_types)]
    return render(request, "undo/undo_list.html", {"undos": undos})


@require_GET
@login_required
@vary_on_headers("HX-Request")
def undo_detail(request: HtmxHttpRequest, undo_id: int) -> HttpResponse:
    undo = get_undo_for_viewer(request, undo_id)
    context = {
        "undo": undo,
        "run_url": host.url_for("run", undo.run_id),
        "can_act": services.may_undo(request.user, undo.record_types),
    }
    template = "undo/undo_detail.html#progress" if request.htmx else "undo/undo_detail.html"
    return render(request, template, context)


@require_GET
def undo_progress(request: HtmxHttpRequest, undo_id: int) -> HttpResponse:
    # Polled by pages: a stale tab gets a 403, never a login page swapped into the bar.
    if not request.user.is_authenticated:
        return HttpResponseForbidden("Your session ended: log in again to follow this undo.")
    undo = get_undo_for_viewer(request, undo_id)
    response = render(request, "undo/undo_detail.html#progress", {"undo": undo})
    if undo.is_finished:
        # The page around the bar (counts, statuses, what stayed) changed too: load it afresh.
        response = HttpResponseStopPolling(response.content)
        response["HX-Refresh"] = "true"
    return response


@require_http_methods(["GET", "POST"])
@login_required
def redo(request: HtmxHttpRequest, undo_id: int) -> HttpResponse:
    undo = get_undo_for_viewer(request, undo_id)
    back = undo.get_absolute_url()
    try:
        services.check_may_undo(request.user, undo.record_types)
        if not undo.is_finished:
            raise services.UndoRefused(f"{undo} is still {undo.get_status_display()}: wait for it to finish.")
        if request.method == "POST":
            redone = services.request_redo(undo=undo, user=request.user, **record_choices(request.POST))
            return redirect(redone.get_absolute_url())
        preview = preview_undo(
            scope=services.redo_scope(undo), description=services.redo_description(undo), target=undo
        )
    except services.NotAllowed as exc:
        return refused(request, exc, status=403, back=back)
    except NothingToUndo:
        return refused(request, f"{undo} wrote nothing, so there is nothing to put back.", status=409, back=back)
    except services.UndoRefused as exc:
        return refused(request, exc, status=409, back=back)
    return render(request, "undo/redo.html", {"undo": undo, "preview": preview})


@require_POST
@login_required
def retry(request: HtmxHttpRequest, undo_id: int) -> HttpResponse:
    undo = get_undo_for_viewer(request, undo_id)
    try:
        services.retry_undo(undo=undo, user=request.user)
    except services.NotAllowed as exc:
        return refused(request, exc, status=403, back=undo.get_absolute_url())
    except services.UndoRefused as exc:
        messages.warning(request, str(exc))
    return redirect(undo.get_absolute_url())
