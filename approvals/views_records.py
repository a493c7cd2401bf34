"""A governed record's page: its current values, the changes proposed on it, its history."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from undo import registry

from .review import queue, services
from .workflows import selectors


def _record_for(request: HttpRequest, record_type: str, record_id: int):
    """The record, for people who see its owner group's queue (others get a 404, as if it did not exist)."""
    try:
        rtype = registry.get(record_type)
    except KeyError:
        raise Http404("No such record type") from None
    if not (queue.sees_all_queues(request.user) or rtype.owner_group in services.reviewer_groups(request.user)):
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
