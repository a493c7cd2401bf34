"""A workflow's pause address: the secret URL an alerting tool POSTs to pause it (as LaunchDarkly's
kill switches are tripped by monitoring), and the operators' button that makes a new one.

The address is `/hooks/pause/<token>/`; only the token's hash is kept (`Workflow.set_pause_hook`),
so the full address is shown once, when it is made. Making a new one retires the old one. The
caller is a machine: every answer is JSON, a wrong or retired token is a bare 404 (it learns
nothing about which workflows exist), and the body (an optional reason) is read strictly.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .. import access
from ..lifecycle import Actor
from ..models import Workflow, hash_token
from .services import REASON_MAX, new_pause_address, pause_workflow

# A reason is a sentence; an alerting tool's own payload (Grafana, Alertmanager) may come along
# and is ignored, so the limit leaves it room without reading megabytes from strangers.
BODY_MAX = 16 * 1024
# Control characters other than tab and newline (folded to spaces), and the bidirectional
# overrides that make text read otherwise than it is: the same as the agent API's free text.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NO_SUCH = {"detail": "No such pause address"}


class BadBody(ValueError):
    """The body cannot be read as a reason; the message says why, `status` which answer."""

    def __init__(self, message: str, status: int = 422):
        self.status = status
        super().__init__(message)


# Making the address (operators and admins, from the workflow's page) ----------------------


@require_POST
@login_required
@never_cache
def workflow_pause_address(request: HttpRequest, name: str) -> HttpResponse:
    """Make a new pause address and show it, once, with the curl line to copy."""
    workflow = access.get_workflow_for(request, name)
    access.check_may_pause(request.user)
    token = new_pause_address(workflow=workflow, actor=Actor.person(request.user))
    url = request.build_absolute_uri(reverse("pause_hook", args=[token]))
    curl = (
        "curl -X POST -H 'Content-Type: application/json' "
        f"""-d '{{"reason":"error rate above 5%"}}' {url}"""
    )
    return render(request, "approvals/workflows/pause_address.html", {"workflow": workflow, "url": url, "curl": curl})


# The address itself (alerting tools) ------------------------------------------------------


@csrf_exempt
@never_cache
def pause_hook(request: HttpRequest, token: str) -> HttpResponse:
    """POST pauses the workflow whose pause address this is; 200 also when it was paused already."""
    if request.method != "POST":
        response = JsonResponse({"detail": "Use POST to pause the workflow."}, status=405)
        response["Allow"] = "POST"
        return response
    try:
        raw = _read_body(request)
    except BadBody as exc:
        return JsonResponse({"detail": str(exc)}, status=exc.status)
    workflow = Workflow.objects.filter(pause_hook_hash=hash_token(token)).first() if token.startswith("ph_") else None
    if workflow is None:
        return JsonResponse(_NO_SUCH, status=404)
    try:
        reason = _reason(request, raw)
    except BadBody as exc:
        return JsonResponse({"detail": str(exc)}, status=exc.status)
    actor = Actor.system(f"alerting hook {workflow.pause_hook_prefix}…")
    outcome = pause_workflow(
        workflow=workflow,
        actor=actor,
        reason=reason or "the alerting tool gave no reason",
        details={"pause_address": workflow.pause_hook_prefix},
    )
    if outcome.already:
        workflow.refresh_from_db()
    return JsonResponse(
        {
            "workflow": workflow.name,
            "state": workflow.state,
            "already_paused": outcome.already,
            "paused_by": workflow.paused_by_label,
            "paused_at": workflow.paused_at.isoformat() if workflow.paused_at else None,
            "reason": workflow.pause_reason,
            "message": outcome.sentence(),
            "page": request.build_absolute_uri(workflow.get_absolute_url()),
        }
    )


def _read_body(request: HttpRequest) -> bytes:
    # The declared length first: a body too big is refused before it is read.
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadBody("The Content-Length header is not a number.", 400) from None
    if declared > BODY_MAX:
        raise BadBody(f"The body is too large (limit {BODY_MAX} bytes); send just the reason.", 413)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BadBody(f"The body is too large (limit {BODY_MAX} bytes); send just the reason.", 413) from None
    if len(raw) > BODY_MAX:
        raise BadBody(f"The body is too large (limit {BODY_MAX} bytes); send just the reason.", 413)
    return raw


def _reason(request: HttpRequest, raw: bytes) -> str:
    """The reason in the body (JSON `{"reason": "..."}` or a form's `reason`), or "" without one;
    raises BadBody when the body is not what it says, or the reason is not a short plain sentence."""
    content_type = request.content_type
    if not raw.strip():
        return ""
    if content_type == "multipart/form-data":  # curl -F reason=...
        try:
            reason = request.POST.get("reason", "")
        except ValueError:
            raise BadBody("The body is not a form; send reason=...") from None
        if "\ufffd" in reason:  # what Django's multipart parser makes of bytes that are not UTF-8
            raise BadBody("The reason is not valid UTF-8.")
        return _checked(reason)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("The body is not valid UTF-8.") from None
    if content_type == "application/json":
        try:
            body = json.loads(text)
        except ValueError:
            raise BadBody('The body is not JSON; send {"reason": "..."}.') from None
        if not isinstance(body, dict):
            raise BadBody('The body must be a JSON object: {"reason": "..."}.')
        reason = body.get("reason", "")
    elif content_type == "application/x-www-form-urlencoded":
        try:
            fields = dict(parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=100))
        except UnicodeDecodeError:
            raise BadBody("The reason is not valid UTF-8.") from None
        except ValueError:
            raise BadBody("The body is not a form; send reason=...") from None
        reason = fields.get("reason", "")
    else:
        raise BadBody('Send the reason as JSON ({"reason": "..."}) or as a form (reason=...).', 415)
    return _checked(reason)


def _checked(reason) -> str:
    if not isinstance(reason, str):
        raise BadBody("The reason must be text.")
    try:
        reason.encode("utf-8")  # JSON can spell a lone surrogate, which is not text at all
    except UnicodeEncodeError:
        raise BadBody("The reason is not valid UTF-8.") from None
    if _UNPRINTABLE.search(reason):
        raise BadBody("The reason may not hold control characters or bidirectional overrides.")
    reason = " ".join(reason.split())
    if len(reason) > REASON_MAX:
        raise BadBody(f"The reason is too long ({len(reason)} characters, at most {REASON_MAX}).")
    return reason
