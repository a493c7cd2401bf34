"""The agent API: JSON over HTTP, token in `Authorization: Bearer`.

Schema served at /api/v1/openapi.json, browsable at /api/v1/docs.
"""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Count, Prefetch, prefetch_related_objects
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Path, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt

from ..models import Agent, Approval, CallbackDelivery, Change, Run, hash_token
from . import callbacks, outbound
from .errors import FREE_TEXT, IDENTIFIER, MAX_ID, AgentAPI, BodyError, Error, StrictJSON, error_body, plain_errors
from .intake import Proposal, ProposalError, propose


class AgentToken(HttpBearer):
    def authenticate(self, request, token):
        agent = Agent.objects.filter(token_hash=hash_token(token), is_active=True).first()
        if agent is not None:
            request.agent = agent
        return agent


api = AgentAPI(
    title="Countersign agent API",
    version="1",
    description="Agents propose changes; rules route them; people review; workers apply. "
    'Every 4xx answer is {"detail": [{"loc": [...], "msg": "..."}]}.',
    auth=AgentToken(),
    urls_namespace="api",
    parser=StrictJSON(),
)


# Schemas -------------------------------------------------------------------------
# Plain pydantic models, not ninja's Schema: its per-object root validator (for
# reading Django objects) cost ~20% of a 1,000-change batch.


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictInt = Field(ge=1, le=MAX_ID)
    expected: dict[str, Any] = Field(default_factory=dict, description="Field values the agent saw before proposing")


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operation_id: str = Field(
        min_length=1, max_length=200, pattern=IDENTIFIER, description="Idempotency key, unique per agent"
    )
    record_type: str = Field(min_length=1, max_length=50, pattern=IDENTIFIER, examples=["ticket"])
    operation: Literal["update", "create", "soft_delete"] = "update"
    records: list[RecordIn] = Field(default_factory=list, max_length=1000)
    values: dict[str, Any] = Field(default_factory=dict, description="Proposed field values")
    risk: StrictFloat = Field(ge=0, le=1, allow_inf_nan=False)
    confidence: StrictFloat = Field(ge=0, le=1, allow_inf_nan=False)
    reasoning: str = Field(default="", max_length=20000, pattern=FREE_TEXT)


class SingleChangeIn(ChangeIn):
    workflow: str = Field(min_length=1, max_length=100, pattern=IDENTIFIER)
    run: str = Field(
        min_length=1,
        max_length=200,
        pattern=IDENTIFIER,
        description="The agent's run id; the run is created on first use",
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(min_length=1, max_length=100, pattern=IDENTIFIER)
    run: str = Field(min_length=1, max_length=200, pattern=IDENTIFIER)
    changes: list[ChangeIn] = Field(min_length=1, max_length=settings.API_MAX_BATCH)


class Links(BaseModel):
    self: str
    run: str
    page: str


class MatchedReason(BaseModel):
    field: str = Field(description="What the condition read, e.g. risk, value.amount, attr.customer_tier")
    op: str | None = None
    expected: Any = None
    actual: Any = None
    text: str = Field(description="In plain words, e.g. 'amount 450 > 100'")


class MatchedRule(BaseModel):
    rule: str | None = Field(description="The rule's name; null for a hard gate (irreversible change)")
    scope: Literal["workflow", "defaults", "gate"]
    outcome: str
    outcome_text: str
    reasons: list[MatchedReason]
    decided: bool = Field(description="This rule (or gate) set the decision")


class ApprovalOut(BaseModel):
    reviewer: str
    at: str
    edited: bool


HELD_MESSAGE = (
    "Present when its workflow is paused and the change is held (answered with 202): "
    "who paused it, since when, why, and what happens when it is resumed"
)


class ChangeOut(BaseModel):
    message: str | None = Field(default=None, description=HELD_MESSAGE)
    id: int
    operation_id: str
    run: str
    status: str
    status_label: str
    decision: str
    explanation: str
    matched_rules: list[MatchedRule]
    rule_set_version: int | None = Field(description="Version of the workflow's rules that decided")
    default_rule_set_version: int | None = Field(description="Version of the global default rules that decided")
    review_group: str
    approvals_required: int
    record_type: str
    operation: str
    record_ids: list[int] = Field(description="The records it targets; for a create, the record it made, once applied")
    values: dict[str, Any] = Field(description="What the agent proposed")
    edited_values: dict[str, Any] | None = Field(description="A reviewer's correction, applied instead of `values`")
    reject_reason: str
    last_error: str
    approver: str | None
    review: str | None = Field(
        description="The people's decision: waiting, approved or rejected (null when no review was needed)"
    )
    approvals: list[ApprovalOut] = Field(description="Approvals that count now (distinct reviewers)")
    decided_at: str | None
    links: Links


class RunOut(BaseModel):
    id: int
    external_id: str
    workflow: str
    agent: str
    started_at: str
    finished_at: str | None
    total: int
    counts: dict[str, int]
    links: dict[str, str]


class BatchOut(BaseModel):
    message: str | None = Field(default=None, description=HELD_MESSAGE)
    run: RunOut
    changes: list[ChangeOut]


def change_out(change: Change, run: Run, request) -> dict:
    return {
        "id": change.pk,
        "operation_id": change.operation_id,
        "run": run.external_id,
        "status": change.status,
        "status_label": Change.Status(change.status).label,
        "decision": change.decision,
        "explanation": change.explanation,
        "matched_rules": change.matched_rules,
        "rule_set_version": change.rule_set.version if change.rule_set_id else None,
        "default_rule_set_version": change.default_rule_set.version if change.default_rule_set_id else None,
        "review_group": change.review_group,
        "approvals_required": change.approvals_required,
        "record_type": change.record_type,
        "operation": change.operation,
        "record_ids": change.applied_record_ids or change.record_ids,
        "values": change.values,
        "edited_values": change.edited_values,
        "reject_reason": change.reject_reason,
        "last_error": change.last_error,
        "approver": change.approver.get_username() if change.approver_id else None,
        "approvals": [
            {
                "reviewer": a.reviewer.get_username(),
                "at": a.created_at.isoformat(),
                "edited": a.edited_values is not None,
            }
            for a in change.current_approvals(change.approvals.all())
        ],
        "decided_at": change.decided_at.isoformat() if change.decided_at else None,
        "review": _review_outcome(change),
        "links": {
            "self": request.build_absolute_uri(f"/api/v1/changes/{change.pk}"),
            "run": request.build_absolute_uri(f"/api/v1/runs/{run.pk}"),
            "page": request.build_absolute_uri(change.get_absolute_url()),
        },
    }


def _review_outcome(change: Change) -> str | None:
    if change.status == Change.Status.REJECTED:
        return "rejected"
    if change.is_waiting:
        return "waiting"
    return "approved" if change.approver_id else None


def run_out(run: Run, request) -> dict:
    counts = dict(run.changes.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "id": run.pk,
        "external_id": run.external_id,
        "workflow": run.workflow.name,
        "agent": str(run.agent),
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "total": sum(counts.values()),
        "counts": counts,
        "links": {
            "self": request.build_absolute_uri(f"/api/v1/runs/{run.pk}"),
            "page": request.build_absolute_uri(run.get_absolute_url()),
        },
    }


_APPROVALS = Prefetch("approvals", queryset=Approval.objects.select_related("reviewer"))


def _with_approvals(changes: list[Change]) -> None:
    # One query for the whole batch, not one per change.
    prefetch_related_objects(changes, _APPROVALS)


ERRORS = {400: Error, 401: Error, 403: Error, 409: Error, 413: Error, 415: Error, 422: Error}
READ_ERRORS = {401: Error, 404: Error, 422: Error}
ID = {"ge": 1, "le": MAX_ID}


# Endpoints -----------------------------------------------------------------------


def held_message(workflow, n: int) -> str:
    """What the API says of proposals held by a pause: "Held: workflow ticket-triage is paused (by maya
    since 14:02: tags look wrong). The changes are recorded; …" """
    since = ""
    if workflow.paused_at:
        at = timezone.localtime(workflow.paused_at)
        since = f" since {at:%H:%M}" if at.date() == timezone.localdate() else f" since {at:%Y-%m-%d %H:%M}"
    who = f"by {workflow.paused_by_label}{since}" if workflow.paused_by_label else since.strip()
    why = f": {workflow.pause_reason}" if workflow.pause_reason else ""
    about = f" ({who}{why})" if who or why else ""
    these = (
        "The change is recorded; the rules' decision is kept and it is"
        if n == 1
        else ("The changes are recorded; the rules' decision is kept and they are")
    )
    return f"Held: workflow {workflow.name} is paused{about}. {these} routed again when it is resumed."


HELD = Change.Status.HELD


@api.post("/changes", response={200: ChangeOut, 201: ChangeOut, 202: ChangeOut, **ERRORS}, summary="Propose one change")
def post_change(request, payload: SingleChangeIn):
    """Propose one change into a run. Same operation id and body again: 200 with the change already stored.
    202: recorded, and held because its workflow is paused (`message` says by whom, since when and why)."""
    body = payload.model_dump()
    run, stored = propose(
        agent=request.agent,
        workflow_name=body.pop("workflow"),
        run_external_id=body.pop("run"),
        proposals=[Proposal.from_dict(body)],
        loc=[],
    )
    change = stored[0].change
    _with_approvals([change])
    body = change_out(change, run, request)
    if change.status == HELD:
        body["message"] = held_message(change.workflow, 1)
    return Status(202 if stored[0].created and change.status == HELD else 201 if stored[0].created else 200, body)


@api.post(
    "/changes/batch",
    response={200: BatchOut, 201: BatchOut, 202: BatchOut, **ERRORS},
    summary="Propose up to 1,000 changes",
)
def post_batch(request, payload: BatchIn):
    """Propose many changes into a run in one request; all are stored, or none.
    202: stored, and some are held because the workflow is paused (`message` says by whom, since when and why)."""
    body = payload.model_dump()
    run, stored = propose(
        agent=request.agent,
        workflow_name=body["workflow"],
        run_external_id=body["run"],
        proposals=[Proposal.from_dict(item) for item in body["changes"]],
        loc=["changes"],
    )
    created = any(s.created for s in stored)
    _with_approvals([s.change for s in stored])
    body = {"run": run_out(run, request), "changes": [change_out(s.change, run, request) for s in stored]}
    held = [s for s in stored if s.change.status == HELD]
    if held:
        body["message"] = held_message(held[0].change.workflow, len(held))
    return Status(202 if any(s.created for s in held) else 201 if created else 200, body)


@api.get("/changes/{change_id}", response={200: ChangeOut, **READ_ERRORS}, summary="Read a change")
def get_change(request, change_id: int = Path(..., **ID)):
    """Status, decision and why (the rules that matched, with the values seen), reviewer's reason, links."""
    change = get_object_or_404(
        Change.objects.select_related("run", "approver", "rule_set", "default_rule_set").prefetch_related(_APPROVALS),
        pk=change_id,
        agent=request.agent,
    )
    return change_out(change, change.run, request)


@api.get("/runs/{run_id}", response={200: RunOut, **READ_ERRORS}, summary="Read a run")
def get_run(request, run_id: int = Path(..., **ID)):
    """The run with its changes counted by status."""
    run = get_object_or_404(Run.objects.select_related("workflow", "agent"), pk=run_id, agent=request.agent)
    return run_out(run, request)


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=500, description="http(s) URL that receives each outcome, signed")


class CallbackOut(BaseModel):
    url: str
    secret: str | None = Field(
        default=None, description="Only in the answer to PUT: the HMAC-SHA256 key for X-Countersign-Signature"
    )
    deliveries: dict[str, int] = Field(default_factory=dict, description="Deliveries by state")


@api.put(
    "/callback",
    response={200: CallbackOut, 400: Error, 401: Error, 413: Error, 415: Error, 422: Error},
    summary="Register a callback URL",
)
def put_callback(request, payload: CallbackIn):
    """Each outcome of this agent's changes (decided, applied, failed, conflict, undone, redone) is POSTed
    to `url`, signed with the secret returned here (only here).

    Only public addresses are accepted (no loopback, private, link-local or multicast address, no user or
    password in the URL), unless the operator allows the network. Registering again gives a new secret.
    Each POST carries `X-Countersign-Signature: sha256=<hex HMAC of the body>`.
    """
    url = payload.url.strip()
    try:
        outbound.check_url(url)
    except outbound.CallbackRefused as exc:
        return Status(422, {"detail": [{"loc": ["body", "url"], "msg": str(exc)}]})
    agent = request.agent
    secret = agent.set_callback(url)
    agent.save(update_fields=["callback_url", "callback_secret"])
    return {"url": url, "secret": secret, "deliveries": {}}


@api.get("/callback", response={200: CallbackOut, 401: Error}, summary="Read the callback and its deliveries")
def get_callback(request):
    """The registered URL (never the secret) and how many deliveries are pending, delivered or failed."""
    counts = dict(
        CallbackDelivery.objects.filter(agent=request.agent).values_list("state").annotate(n=Count("id")).order_by()
    )
    return {"url": request.agent.callback_url, "deliveries": counts}


@api.delete("/callback", response={204: None, 401: Error}, summary="Stop callbacks")
def delete_callback(request):
    """No more callbacks, pending retries included; outcomes stay readable with GET /changes/{id}."""
    callbacks.stop_callbacks(agent=request.agent)
    return Status(204, None)


# Errors --------------------------------------------------------------------------
# One shape for every 4xx (see approvals.agents.errors).


@api.exception_handler(ProposalError)
def proposal_error(request, exc: ProposalError):
    return api.create_response(request, error_body(exc.loc, exc.message), status=exc.status)


@api.exception_handler(RequestDataTooBig)
def too_big(request, exc):
    limit = settings.API_MAX_BODY_BYTES
    message = f"The body is too large (limit {limit} bytes); send fewer changes per batch."
    return api.create_response(request, error_body(["body"], message), status=413)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    message = "Missing or unknown API token: send 'Authorization: Bearer <token>'."
    response = api.create_response(request, error_body(["header", "Authorization"], message), status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HttpError)
def unreadable(request, exc: HttpError):
    # ninja wraps what its parser raised (a body that is not JSON, or not sent as JSON).
    cause = exc.__cause__
    if isinstance(cause, BodyError):
        return api.create_response(request, error_body(cause.loc, cause.message), status=cause.status)
    return api.create_response(request, error_body([], str(exc)), status=exc.status_code)


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(
        request, error_body(["path"], "Not found: your agent has nothing with this id."), status=404
    )


@api.exception_handler(ValidationError)
def invalid(request, exc: ValidationError):
    if request.method in ("POST", "PUT") and not request.body:
        return api.create_response(request, error_body(["body"], "The body is empty; send a JSON object."), status=400)
    return api.create_response(request, {"detail": plain_errors(exc.errors)}, status=422)
