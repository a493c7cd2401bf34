"""Who may see and who may act: one answer for changes, runs, records, undos, rules and workflows.

In words:
- admins (superusers) see everything and may do everything;
- operators see everything, edit routing rules, and pause and resume workflows (the kill switch:
  a workflow's page, the dashboard's pause buttons, "Stop all agents");
- reviewers (the "reviewers" group) review every queue, so they see every change, and read the rest;
- a record owner group (support owns tickets, finance owns invoices; see each record type's
  registration) sees the changes, runs and records of its record types and the changes routed
  to it for review, reviews those, and undoes and restores its records;
- a person in no group sees nothing but a page saying whom to ask.

Views call the per-object getters (healthchecks' `_get_check_for_user`): a person who may not see
an object gets a 404, as if it did not exist; a person who may see it but not act gets a 403 that
says why (PermissionDenied, shown by templates/403.html). Undo's own pages ask the same rules
through `undo.host.set_access` (filled in apps.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest
from django.shortcuts import render

from undo import registry

from .models import Change, Run, Workflow

REVIEW_ALL = "reviewers"
OPERATORS = "operators"
SEE_ALL = frozenset({REVIEW_ALL, OPERATORS})


def groups_of(user) -> frozenset[str]:
    """The names of the user's groups, read once per user object (a page asks for every item)."""
    if not _person(user):
        return frozenset()
    cached = getattr(user, "_countersign_groups", None)
    if cached is None:
        cached = user._countersign_groups = frozenset(user.groups.values_list("name", flat=True))
    return cached


def _person(user) -> bool:
    # Only people: an agent's service identity is not a user and never passes.
    return isinstance(user, AbstractBaseUser) and user.is_authenticated and user.is_active


def is_member(user) -> bool:
    """Admins and anyone in a group: people who see something."""
    return _person(user) and (user.is_superuser or bool(groups_of(user)))


def sees_all(user) -> bool:
    """Admins, operators and reviewers see every change, run, record and undo."""
    return _person(user) and (user.is_superuser or bool(groups_of(user) & SEE_ALL))


def owned_record_types(user) -> list[str]:
    """The record types whose owner group the user is in."""
    groups = groups_of(user)
    return sorted(t.name for t in registry.all_record_types() if t.owner_group in groups)


# Changes ------------------------------------------------------------------------------


def may_see_change(user, change: Change) -> bool:
    if sees_all(user):
        return True
    groups = groups_of(user)
    return change.review_group in groups or registry.get(change.record_type).owner_group in groups


def may_review(user, change: Change) -> bool:
    """Members of the change's review group (or the reviewers group) and admins review it."""
    if not _person(user):
        return False
    groups = groups_of(user)
    return user.is_superuser or change.review_group in groups or REVIEW_ALL in groups


def reviewable(user) -> Q | None:
    """The changes `user` may review, as a condition on their review group (None: every one);
    the same answer as `may_review`, for a whole query at once."""
    if not _person(user):
        return Q(pk__in=[])
    if user.is_superuser or REVIEW_ALL in groups_of(user):
        return None
    return Q(review_group__in=sorted(groups_of(user)))


def why_not_reviewer(change: Change) -> str:
    return f"You are not in the {change.review_group or REVIEW_ALL} group that reviews this change."


def get_change_for(request: HttpRequest, change_id: int, *, act: bool = False, queryset=None) -> Change:
    """The change, for people who may see it (404 to others, deciding it or not). With `act`
    (deciding it), one who sees it but may not review it gets a 403 saying which group does, and
    never the change itself."""
    change = (queryset if queryset is not None else Change.objects).filter(pk=change_id).first()
    if change is None or not may_see_change(request.user, change):
        raise Http404("No such change")
    if act and not may_review(request.user, change):
        raise PermissionDenied(why_not_reviewer(change))
    return change


# Runs ---------------------------------------------------------------------------------


def may_see_run(user, run: Run) -> bool:
    """A run is seen by those who see all, and by the groups it touches (as owners or reviewers)."""
    if sees_all(user):
        return True
    if not is_member(user):
        return False
    touches = Q(record_type__in=owned_record_types(user)) | Q(review_group__in=sorted(groups_of(user)))
    return run.changes.filter(touches).exists()


def get_run_for(request: HttpRequest, run_id: int) -> Run:
    run = Run.objects.select_related("agent", "workflow").filter(pk=run_id).first()
    if run is None or not may_see_run(request.user, run):
        raise Http404("No such run")
    return run


# Records and undos --------------------------------------------------------------------


def may_see_records(user, record_types: Iterable[str] | None = None) -> bool:
    """Records of these types (and undos that touch them): those who see all, and the owners of
    one of them. Without record types: whether the user sees any record at all."""
    if sees_all(user):
        return True
    if record_types is None:
        return is_member(user)
    owned = owned_record_types(user)
    return any(name in owned for name in record_types)


def may_undo(user, record_types: Iterable[str]) -> bool:
    """Undo and restore: members of every record type's owner group, and admins."""
    if not _person(user):
        return False
    owned = owned_record_types(user)
    return user.is_superuser or all(name in owned for name in record_types)


def get_record_for(request: HttpRequest, record_type: str, record_id: int):
    """(record type, record or None if only its history is left), for people who may see its
    records; 404 for others and for records that never were."""
    try:
        rtype = registry.get(record_type)
    except KeyError:
        raise Http404("No such record type") from None
    if not may_see_records(request.user, [rtype.name]):
        raise Http404("No such record")
    instance = rtype.queryset().filter(pk=record_id).first()
    if instance is None and not rtype.model.history.filter(id=record_id).exists():
        raise Http404("No such record")
    return rtype, instance


# Rules and workflows ------------------------------------------------------------------


def may_read_rules(user) -> bool:
    """Operators, reviewers, record owners and admins read the routing rules."""
    if sees_all(user):
        return True
    owners = {t.owner_group for t in registry.all_record_types()}
    return bool(groups_of(user) & owners)


def may_edit_rules(user) -> bool:
    return _person(user) and (user.is_superuser or OPERATORS in groups_of(user))


def check_may_edit_rules(user) -> None:
    if not may_edit_rules(user):
        raise PermissionDenied("Only operators and admins edit routing rules.")


def may_pause(user) -> bool:
    """Operators and admins pause and resume workflows (and stop them all), people only; they also
    edit a workflow's automatic pause and its runbook."""
    return _person(user) and (user.is_superuser or OPERATORS in groups_of(user))


def check_may_pause(user) -> None:
    if not may_pause(user):
        raise PermissionDenied("Only operators and admins pause and resume workflows.")


def get_workflow_for(request: HttpRequest, name: str) -> Workflow:
    """The workflow called `name`, for every member (its page is how people see what it does and
    whether it is paused); 404 to anyone else, and for a workflow that does not exist."""
    workflow = Workflow.objects.select_related("owner", "paused_by").filter(name=name).first()
    if workflow is None or not is_member(request.user):
        raise Http404("No such workflow")
    return workflow


# Refusals and people in no group ------------------------------------------------------


def member_required(view):
    """Log in first; a person in no group gets the page saying whom to ask (403), not the view."""

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_member(request.user):
            if getattr(request, "htmx", False):
                return permission_denied(request, PermissionDenied(NO_GROUP))
            return whom_to_ask(request)
        return view(request, *args, **kwargs)

    return wrapped


NO_GROUP = "You are not in a group yet: ask an admin to add you to the group you work in."


def whom_to_ask(request: HttpRequest):
    """The only page a person in no group sees: who can put them in one."""
    people = get_user_model().objects.filter(is_active=True).order_by("username")
    context = {
        "admins": [u.get_username() for u in people.filter(is_superuser=True)],
        "operators": [u.get_username() for u in people.filter(groups__name=OPERATORS).distinct()],
    }
    return render(request, "approvals/no_group.html", context, status=403)


def permission_denied(request: HttpRequest, exception=None):
    """The 403 page (handler403): the plain reason; for htmx, the reason alone, never the item."""
    reason = str(exception) if exception else ""
    template = "403.html#reason" if getattr(request, "htmx", False) else "403.html"
    return render(request, template, {"reason": reason}, status=403)
