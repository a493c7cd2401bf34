"""The review queue and its decisions: approve, reject with a reason, correct then approve,
and alike changes decided together after a confirmation.

Every decision works as a plain form (redirect back with a message) and, with htmx,
answers the updated item in place: 200 when decided, 422 for a form error, 409 when
someone else decided first, 403 when the reviewer may not decide it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.middleware import HtmxDetails

from .. import access
from ..lifecycle import WAITING, ChangeMoved, IllegalTransition
from ..models import Change
from . import queue, services
from .forms import BulkForm, EditValuesForm, QueueFilterForm, RejectForm
from .items import QueueItem, review_items

BULK_LIMIT = 1000


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# The queue ------------------------------------------------------------------------------


@require_GET
@access.member_required
@vary_on_headers("HX-Request")
def review(request: HtmxHttpRequest) -> HttpResponse:
    # Filters and pages push their URL: restoring one from history needs the whole page.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "approvals/review.html#queue" if partial else "approvals/review.html"
    return _render_queue(request, request.GET, template)


def _render_queue(request, params: QueryDict, template: str, status: int = 200) -> HttpResponse:
    form = QueueFilterForm(params)
    if form.is_valid():
        data = form.cleaned_data
        page = queue.review_page(
            user=request.user,
            filters=form.queue_filter(),
            size=form.page_size,
            after=data["after"],
            before=None if data["after"] else data["before"],
        )
    else:
        page, status = None, 422
    context = {
        "form": form,
        "page": page,
        "alike": form.cleaned_data.get("alike") if page else None,
        "here": _url(params),
        "first_url": _url(params, after=None, before=None),
        "next_url": page and page.next_cursor and _url(params, after=page.next_cursor, before=None),
        "prev_url": page and page.prev_cursor and _url(params, before=page.prev_cursor, after=None),
        "all_queues_url": _url(params, queue=None, after=None, before=None),
        "all_runs_url": _url(params, run=None, after=None, before=None),
        "sees_all": access.sees_all(request.user),
    }
    # Every card shown is of one queue (the reviewer has one, or filtered to one): the queue's
    # name is above them, once, not on each card.
    context["one_queue"] = bool(page) and (
        bool(form.cleaned_data.get("queue")) or (len(page.queues) == 1 and not context["sees_all"])
    )
    if context["alike"] and page.items:
        context["alike_sentence"] = queue.describe_group(context["alike"], page.matching, page.items[0].change.run)
        context["alike_query"] = context["alike"].query
        context["alike_decidable"] = any(i.can_decide for i in page.items)
    return render(request, template, context, status=status)


def _url(params: QueryDict, **replace) -> str:
    query = params.copy()
    for name, value in replace.items():
        query.pop(name, None)
        if value is not None:
            query[name] = value
    encoded = query.urlencode()
    return reverse("review") + (f"?{encoded}" if encoded else "")


# Decisions on one change ------------------------------------------------------------------


@require_POST
@login_required
def approve(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    change = access.get_change_for(request, change_id, act=True)
    return _decide(request, change, lambda: services.approve_change(change=change, user=request.user))


@require_POST
@login_required
def reject(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    change = access.get_change_for(request, change_id, act=True)
    form = RejectForm(request.POST)
    if not form.is_valid():
        message = form.errors["reason"][0]
        if request.htmx:
            return _item(request, change, status=422, reject_form=form)
        messages.error(request, message)
        return _back(request, change)
    reason = form.cleaned_data["reason"]
    return _decide(request, change, lambda: services.reject_change(change=change, user=request.user, reason=reason))


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
def edit(request: HtmxHttpRequest, change_id: int) -> HttpResponse:
    """Correct the proposed values, then approve the corrected version (the agent's stays on record)."""
    change = access.get_change_for(request, change_id, act=True)
    if change.operation == Change.Operation.SOFT_DELETE:
        messages.error(request, "A delete has no values to correct: approve or reject it.")
        return _back(request, change)
    form = EditValuesForm(request.POST if request.method == "POST" else None, change=change)
    if request.method == "GET":
        try:
            services.check_reviewable(request.user, change)
        except ChangeMoved:
            return _edit_page(request, change, None, status=409, notice=_moved_message(change))
        return _edit_page(request, change, form, status=200)
    if form.is_valid():
        values = form.proposed_values()
        try:
            services.approve_change(change=change, user=request.user, values=values)
        except services.InvalidEdit as exc:
            for name, message in exc.errors.items():
                form.add_error(name if name in form.fields else None, message)
        except services.NotAllowed as exc:
            return _refused(request, change, str(exc), status=403)
        except (ChangeMoved, IllegalTransition):
            return _refused(request, change, _moved_message(change), status=409)
        else:
            # Approving the correction form unchanged approves the proposal as it was: say so.
            corrected = change.approvals.filter(reviewer=request.user).latest("id").edited_values is not None
            return _decided(request, change, " with your corrections" if corrected else "")
    return _edit_page(request, change, form, status=422)


def _edit_page(request, change: Change, form: EditValuesForm | None, *, status: int, notice: str = "") -> HttpResponse:
    level = "warning" if notice else ""
    if request.htmx:
        return _item(request, change, status=status, edit_form=form, notice=notice, level=level)
    item = review_items([_fresh(change)], user=request.user)[0]
    context = {"item": item, "edit_form": form, "notice": notice, "level": level}
    return render(request, "approvals/change_edit.html", context, status=status)


def _decide(request, change: Change, decide) -> HttpResponse:
    try:
        decide()
    except services.NotAllowed as exc:
        return _refused(request, change, str(exc), status=403)
    except (ChangeMoved, IllegalTransition):
        return _refused(request, change, _moved_message(change), status=409)
    return _decided(request, change, None)


def _decided(request, change: Change, how: str | None) -> HttpResponse:
    item = review_items([_fresh(change)], user=request.user)[0]
    change = item.change
    if change.is_waiting:
        text = (
            f"You approved change {change.pk}: {len(item.approvals)} of {item.approvals_needed} approvals; "
            "it waits for another reviewer."
        )
    elif change.status == Change.Status.REJECTED:
        text = f"Rejected change {change.pk}; the agent reads your reason."
    else:
        after = "held: its workflow is paused" if change.status == Change.Status.HELD else "a worker applies it"
        text = f"Approved change {change.pk}{how or ''}: {after}."
    if request.htmx:
        return _item(request, change, notice=text, level="success", item=item)
    messages.success(request, text)
    return _back(request, change)


def _refused(request, change: Change, text: str, *, status: int) -> HttpResponse:
    if request.htmx:
        return _item(request, change, notice=text, level="warning", status=status)
    messages.warning(request, text)
    return _back(request, change)


def _moved_message(change: Change) -> str:
    change = _fresh(change)
    status = change.get_status_display()
    if not change.approver_id:
        return f"Change {change.pk} moved on meanwhile: it is already {status}. Nothing was done."
    verb = "rejected" if change.status == Change.Status.REJECTED else "approved"
    who = change.approver.get_username()
    return f"Someone else decided change {change.pk} first ({verb} by {who}): it is already {status}. Nothing was done."


def _fresh(change: Change) -> Change:
    return Change.objects.select_related("workflow", "agent", "run", "approver").get(pk=change.pk)


def _item(request, change: Change, *, status=200, notice="", level="", reject_form=None, edit_form=None, item=None):
    item = item or review_items([_fresh(change)], user=request.user)[0]
    here = request.POST.get("next") or _current_url(request)
    context = {
        "here": here,
        "item": item,
        "notice": notice,
        "level": level,
        "reject_form": reject_form,
        "edit_form": edit_form,
    }
    return render(request, "approvals/_review_item.html", context, status=status)


def _back(request, change: Change) -> HttpResponse:
    next_url = request.POST.get("next", "") or request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("review")
    return redirect(next_url)


# Alike changes, decided together ------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
@vary_on_headers("HX-Request")
def alike(request: HtmxHttpRequest) -> HttpResponse:
    """GET: say exactly what approving (or rejecting) a group will do. POST: do it, change by change."""
    if request.method == "POST":
        return _bulk(request)
    form = QueueFilterForm(request.GET)
    action = request.GET.get("action")
    if not form.is_valid() or not form.cleaned_data.get("alike") or action not in ("approve", "reject"):
        return HttpResponse("Which group of changes, and approve or reject?", status=400)
    group = form.cleaned_data["alike"]
    changes = queue.alike_changes(user=request.user, alike=group, limit=BULK_LIMIT)
    items = review_items(changes, user=request.user)
    decidable = [i for i in items if i.can_decide]
    refusal = _why_not_yours(request.user, group, items) if not decidable else None
    context = {
        "action": action,
        "items": decidable,
        "refusal": refusal and refusal[0],
        "shown": decidable[:20],
        "hidden": max(len(decidable) - 20, 0),
        "approved_already": sum(1 for i in items if i.approved_by_me),
        "not_yours": sum(1 for i in items if not i.approved_by_me and not i.can_decide),
        "more_approvals": sum(1 for i in decidable if len(i.approvals) + 1 < i.approvals_needed),
        "sentence": queue.describe_group(group, len(decidable), changes[0].run) if changes else "",
        "ids": ",".join(str(i.change.pk) for i in decidable),
        "next": _safe_next(request, request.GET.get("next") or _current_url(request)),
        "limit": BULK_LIMIT,
        "bulk_form": BulkForm(initial={"action": action}),
    }
    template = "approvals/alike_confirm.html#confirm" if request.htmx else "approvals/alike_confirm.html"
    return render(request, template, context, status=refusal[1] if refusal else 200)


def _why_not_yours(user, group: queue.Alike, items: list[QueueItem]) -> tuple[str, int]:
    """Why none of an alike group is the user's to decide, and the status that says so."""
    if not items:
        if Change.objects.filter(group.matches(), status__in=WAITING).exists():
            return "None of these changes is in your queues: you are not in the group that reviews them.", 403
        return "Nothing in this group waits any more: it was decided meanwhile.", 409
    if all(i.approved_by_me for i in items):
        return "You already approved each of them; they wait for another reviewer.", 403
    groups = sorted({i.change.review_group or "reviewers" for i in items if not access.may_review(user, i.change)})
    text = f"You are not in the {' or '.join(groups)} group that reviews these changes"
    if any(i.approved_by_me for i in items):
        text += "; those you may review, you already approved"
    return text + ".", 403


def _bulk(request: HtmxHttpRequest) -> HttpResponse:
    form = BulkForm(request.POST)
    next_url = _safe_next(request, request.POST.get("next", ""))
    outcome = None
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    elif form.cleaned_data["action"] == "approve":
        outcome = services.approve_many(change_ids=form.change_ids()[:BULK_LIMIT], user=request.user)
        _bulk_message(request, outcome, "Approved")
    else:
        outcome = services.reject_many(
            change_ids=form.change_ids()[:BULK_LIMIT], user=request.user, reason=form.cleaned_data["reason"]
        )
        _bulk_message(request, outcome, "Rejected")
    if request.htmx:
        # Refused outright (not one of them was the person's to decide): 403, the queue says why.
        refused = outcome is not None and outcome.not_allowed and not (outcome.decided or outcome.awaiting_more)
        query = QueryDict(urlsplit(next_url).query)
        return _render_queue(request, query, "approvals/review.html#queue", status=403 if refused else 200)
    return redirect(next_url)


def _bulk_message(request, outcome: services.BulkOutcome, done: str) -> None:
    parts = [f"{done} {len(outcome.decided)} change{'s' if len(outcome.decided) != 1 else ''}."]
    if outcome.awaiting_more:
        parts.append(f"{len(outcome.awaiting_more)} got your approval and wait for another reviewer.")
    moved = len(outcome.skipped) - len(outcome.not_allowed)
    if moved:
        parts.append(f"{moved} left as they were: someone else decided {'it' if moved == 1 else 'them'} meanwhile.")
    if outcome.not_allowed:
        # The reasons, once each ("You are not in the support group that reviews this change.").
        reasons = dict.fromkeys(outcome.skipped[pk] for pk in outcome.not_allowed)
        parts.append(f"{len(outcome.not_allowed)} not decided: {' '.join(reasons)}")
    (messages.warning if outcome.skipped else messages.success)(request, " ".join(parts))


def _current_url(request) -> str:
    return (request.htmx.current_url_abs_path or "") if request.htmx else ""


def _safe_next(request, next_url: str) -> str:
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return next_url
    return reverse("review")
