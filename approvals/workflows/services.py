"""Workflows' state: the kill switch. Pausing a workflow holds what was on its way to the
records; resuming routes what it held again.

People pause from the workflow page and the dashboard, an alerting tool through the workflow's
secret pause address, the automatic pause when a run goes bad: all through `pause_workflow`.
Operators also set a workflow's automatic pause (`set_auto_pause`) and its runbook (`set_runbook`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from countersign.outbox.dispatcher import dispatch
from undo import registry

from .. import audit, lifecycle, rules
from ..apply.services import enqueue_apply
from ..lifecycle import Actor
from ..models import AutoPause, Change, Event, RuleSet, Workflow

S = Change.Status
D = Change.Decision

REASON_MAX = 500


@dataclass(frozen=True)
class Paused:
    """What pausing did: `already` when the workflow was paused before (nothing more was done);
    the changes it held, and those a worker had claimed (they finish or are held by the worker)."""

    workflow: Workflow
    already: bool
    held: list[int] = field(default_factory=list)
    applying: list[int] = field(default_factory=list)

    def sentence(self) -> str:
        w = self.workflow
        if self.already:
            return f"{w.name} was already paused by {w.paused_by_label} ({w.pause_reason})."
        n = len(self.held)
        parts = [f"{n} queued change{'s' if n != 1 else ''} held" if n else "nothing was queued"]
        if self.applying:
            n = len(self.applying)
            parts.append(
                f"{n} change{'s' if n != 1 else ''} a worker had claimed will finish if already writing, else be held"
            )
        return f"Paused {w.name}: {'; '.join(parts)}. New proposals are recorded and held."


def pause_workflow(*, workflow: Workflow, actor: Actor, reason: str, details: dict | None = None) -> Paused:
    """Pause `workflow`: nothing of it starts applying once this commits (the worker reads the state
    in the transaction of each claim and each apply), what was queued is held, new proposals and
    approvals are held. Pausing a paused workflow does nothing. Writes the `paused` event, and
    hands the pause alert (an email to the runbook's people and the owner) to the workers."""
    reason = " ".join(reason.split())[:REASON_MAX] or "no reason given"
    with transaction.atomic():
        # Locked, so a worker's claim (which reads the row FOR SHARE) waits for this commit.
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if locked.is_paused:
            return Paused(locked, already=True)
        now = timezone.now()
        fields = {
            "state": Workflow.State.PAUSED,
            "paused_at": now,
            "paused_by": actor.user,
            "paused_by_label": actor.label,
            "pause_reason": reason,
        }
        Workflow.objects.filter(pk=workflow.pk).update(**fields)
        for name, value in fields.items():
            setattr(workflow, name, value)
        queued = Change.objects.filter(workflow=workflow, status=S.QUEUED).order_by("id").values_list("pk", flat=True)
        held = lifecycle.transition_many(
            list(queued), S.HELD, frm=S.QUEUED, actor=actor, reason=f"Its workflow was paused: {reason}"
        )
        applying = list(
            Change.objects.filter(workflow=workflow, status=S.APPLYING).order_by("id").values_list("pk", flat=True)
        )
        outcome = Paused(workflow, already=False, held=held, applying=applying)
        text = f"{actor.label}: paused workflow {workflow.name}: {reason}. {outcome.sentence()}"
        audit.write(
            [
                audit.Entry(
                    Event.Kind.PAUSED,
                    actor,
                    text,
                    workflow_id=workflow.pk,
                    at=now,
                    details={"reason": reason, "held": held, "applying": applying, **(details or {})},
                )
            ]
        )
        # This pause's event: the row lock above keeps any other pause of the workflow out.
        event_id = (
            Event.objects.filter(workflow=workflow, kind=Event.Kind.PAUSED)
            .order_by("-created_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
        dispatch("approvals.tasks.send_pause_alert_task", [event_id])
    return outcome


def stop_all(*, actor: Actor, reason: str) -> list[Paused]:
    """Pause every running workflow ("Stop all agents"), each with its own event."""
    return [
        pause_workflow(workflow=w, actor=actor, reason=reason)
        for w in Workflow.objects.filter(state=Workflow.State.RUNNING).order_by("name")
    ]


def new_pause_address(*, workflow: Workflow, actor: Actor) -> str:
    """Give `workflow` a new secret pause token (the old one stops working at once); returns the
    token, which is never stored. Writes an event naming its prefix, never the token."""
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        had = locked.pause_hook_prefix
        token = locked.set_pause_hook()
        Workflow.objects.filter(pk=workflow.pk).update(
            pause_hook_hash=locked.pause_hook_hash, pause_hook_prefix=locked.pause_hook_prefix
        )
        workflow.pause_hook_hash, workflow.pause_hook_prefix = locked.pause_hook_hash, locked.pause_hook_prefix
        retired = f"; the old one ({had}…) no longer pauses it" if had else ""
        text = (
            f"{actor.label}: made a new pause address for workflow {workflow.name} ({workflow.pause_hook_prefix}…)"
            f"{retired}. Next: put it in the alerting tool that should be able to pause it."
        )
        details = {"pause_address": workflow.pause_hook_prefix, "retired": had}
        # The pause address is part of how this workflow is handled when it goes wrong: its runbook.
        audit.write([audit.Entry(Event.Kind.RUNBOOK_CHANGED, actor, text, workflow_id=workflow.pk, details=details)])
    return token


# Where a held change goes when the rules route it again.
_AFTER_HOLD = {D.AUTO_APPLY: S.QUEUED, D.REVIEW: S.PENDING_REVIEW, D.REFUSE: S.REFUSED}


@dataclass
class Resumed:
    """What resuming did with the changes the workflow held, by where they went. `asked_again`:
    approvals given under rules or record values that changed since, back to review; `why` says
    why for each of them."""

    queued: list[int] = field(default_factory=list)
    to_review: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    asked_again: list[int] = field(default_factory=list)
    why: dict[int, str] = field(default_factory=dict)
    everything_to_review: bool = False

    @property
    def total(self) -> int:
        return len(self.queued) + len(self.to_review) + len(self.refused) + len(self.asked_again)

    def sentence(self) -> str:
        """ "3 held changes routed again: 1 queued, 1 sent to review, 1 asked again (its approval
        was given under rules or record values that changed since)." """
        if not self.total:
            return "No change was held."
        parts = [
            f"{len(ids)} {what}"
            for ids, what in (
                (self.queued, "queued"),
                (self.to_review, "sent to review"),
                (self.refused, "refused"),
                (self.asked_again, "asked again"),
            )
            if ids
        ]
        n = self.total
        if self.everything_to_review:
            text = f"{n} held change{'s' if n != 1 else ''} sent to review, as asked"
            if self.asked_again:
                text += f" ({len(self.asked_again)} of them approved before the pause: asked again)"
            return text + "."
        text = f"{n} held change{'s' if n != 1 else ''} routed again: {', '.join(parts)}"
        if self.asked_again:
            one = len(self.asked_again) == 1
            text += (
                f" ({'its approval was' if one else 'their approvals were'} given under rules or record values"
                " that changed since)"
            )
        return text + "."

    def next_step(self) -> str:
        """ "Next: workers apply what was queued; a reviewer decides what was sent to review." """
        review = " and ".join(
            what for ids, what in ((self.to_review, "sent to review"), (self.asked_again, "asked again")) if ids
        )
        steps = [
            what
            for ok, what in (
                (self.queued, "workers apply what was queued"),
                (review, f"a reviewer decides what was {review}"),
            )
            if ok
        ]
        return f"Next: {'; '.join(steps)}." if steps else "Next: its new proposals are routed as they come."


def resume_workflow(*, workflow: Workflow, actor: Actor, to_review: bool = False) -> Resumed:
    """Set `workflow` running and route each change it held again by the current rules: queued,
    sent to review or refused as they say now. A person's approval stands only if the rules and the
    records' values it was given on are still as they were; else it is asked again. With `to_review`
    ("send everything held to review") every held change waits for a person."""
    outcome = Resumed(everything_to_review=to_review)
    with transaction.atomic():
        # Locked as a pause locks it: a pause and a resume of one workflow happen one after the other.
        Workflow.objects.select_for_update().filter(pk=workflow.pk).first()
        cleared = {"paused_at": None, "paused_by": None, "paused_by_label": "", "pause_reason": ""}
        Workflow.objects.filter(pk=workflow.pk).update(state=Workflow.State.RUNNING, **cleared)
        workflow.state = Workflow.State.RUNNING
        for name, value in cleared.items():
            setattr(workflow, name, value)
        held = list(
            Change.objects.filter(workflow=workflow, status=S.HELD)
            .select_related("agent", "workflow", "approver", "run")
            .order_by("id")
        )
        active = rules.current_rules(workflow) if held else None
        routings = _route(workflow, held, active)
        approved = _approvals_to_ask_again([c for c in held if c.approver_id], active)
        now = timezone.now()
        for change, routing in zip(held, routings, strict=True):
            approver = change.approver.get_username() if change.approver_id else ""
            why = approved.get(change.pk)
            if to_review:
                why = why or (f"{actor.label} sent everything held to review" if approver else None)
                to, reason = (
                    S.PENDING_REVIEW,
                    f"The workflow was resumed; {actor.label} sent everything it held to review.",
                )
            elif routing.decision == D.REFUSE:
                to, reason = S.REFUSED, f"The workflow was resumed; routed again by the rules. {routing.explanation}"
            elif why:
                to, reason = S.PENDING_REVIEW, f"The workflow was resumed; asked again: {why}."
            elif approver:
                to = S.QUEUED
                reason = (
                    f"The workflow was resumed; approved by {approver} under the same rules and values, it is queued."
                )
            else:
                to = _AFTER_HOLD[routing.decision]
                reason = f"The workflow was resumed; routed again by the rules. {routing.explanation}"
            lifecycle.transition(
                change, to, actor=actor, reason=reason, **_fields(change, to, routing, why, to_review, actor, now)
            )
            if to == S.PENDING_REVIEW and why:
                outcome.asked_again.append(change.pk)
                outcome.why[change.pk] = why
            else:
                {S.QUEUED: outcome.queued, S.PENDING_REVIEW: outcome.to_review, S.REFUSED: outcome.refused}[to].append(
                    change.pk
                )
        text = f"{actor.label}: resumed workflow {workflow.name}. {outcome.sentence()} {outcome.next_step()}"
        details = {
            "queued": outcome.queued,
            "to_review": outcome.to_review,
            "refused": outcome.refused,
            "asked_again": outcome.asked_again,
            "why": {str(pk): why for pk, why in outcome.why.items()},
            "everything_to_review": to_review,
        }
        audit.write([audit.Entry(Event.Kind.RESUMED, actor, text, workflow_id=workflow.pk, details=details)])
        if outcome.queued:
            enqueue_apply(sorted(outcome.queued))
    return outcome


def _route(workflow: Workflow, changes: list[Change], active: rules.ActiveRules | None) -> list[rules.Routing]:
    """The current rules' routing of each change, read once for all of them."""
    if not changes:
        return []
    return [
        rules.route(change, workflow, attributes=attributes, active=active)
        for change, attributes in zip(changes, rules.attributes_by_change(changes), strict=True)
    ]


# The automatic pause and the runbook, as people set them on the workflow's page -------------

# Each setting of the automatic pause, as its event names it, and how its value reads.
AUTO_PAUSE_WORDS: dict[str, tuple[str, str]] = {
    "enabled": ("automatic pause", "{}"),
    "window_minutes": ("window", "{} minutes"),
    "sample_size": ("rates taken over", "the last {} outcomes"),
    "min_sample": ("minimum sample", "{} outcomes"),
    "max_rejection_pct": ("rejection threshold", "{}%"),
    "max_failure_pct": ("failure threshold", "{}%"),
    "max_undo_pct": ("undo threshold", "{}%"),
    "max_applied_per_minute": ("applied-per-minute ceiling", "{} a minute"),
    "max_same_value": ("same-value ceiling", "{} records"),
    "same_value_minutes": ("same-value window", "{} minutes"),
}


def _auto_pause_value(name: str, value) -> str:
    if name == "enabled":
        return "on" if value else "off"
    return "off" if value is None else AUTO_PAUSE_WORDS[name][1].format(value)


def set_auto_pause(*, workflow: Workflow, actor: Actor, values: dict | None = None) -> list[str]:
    """Set the thresholds of `workflow`'s automatic pause to `values` (a setting left out keeps its
    value); a workflow without one gets one with the defaults, on. Writes an `auto_pause_changed`
    event naming each setting that changed, from what to what; returns those words (empty:
    nothing changed, no event)."""
    with transaction.atomic():
        current = AutoPause.objects.select_for_update().filter(workflow=workflow).first()
        created = current is None
        setting = current or AutoPause(workflow=workflow, enabled=True)
        before = {name: getattr(setting, name) for name in AUTO_PAUSE_WORDS}
        for name, value in (values or {}).items():
            if name in AUTO_PAUSE_WORDS:
                setattr(setting, name, value)
        changed = [n for n in AUTO_PAUSE_WORDS if getattr(setting, n) != before[n]]
        if not created and not changed:
            return []
        setting.updated_by = actor.user
        setting.updated_at = timezone.now()
        setting.save()
        if created:
            said = [
                "turned on with "
                + ", ".join(
                    f"{AUTO_PAUSE_WORDS[n][0]} {_auto_pause_value(n, getattr(setting, n))}"
                    for n in AUTO_PAUSE_WORDS
                    if n != "enabled"
                )
            ]
        else:
            said = [
                f"{AUTO_PAUSE_WORDS[n][0]} {_auto_pause_value(n, before[n])} → "
                f"{_auto_pause_value(n, getattr(setting, n))}"
                for n in changed
            ]
        details = {n: [before[n], getattr(setting, n)] for n in (AUTO_PAUSE_WORDS if created else changed)}
        audit.write(
            [
                audit.Entry(
                    Event.Kind.AUTO_PAUSE_CHANGED,
                    actor,
                    f"{actor.label}: automatic pause of {workflow.name}: {', '.join(said)}.",
                    workflow_id=workflow.pk,
                    details={"created": created, "changed": details},
                )
            ]
        )
    return said


# The runbook's jobs: the field that names the person, and the job in words.
RUNBOOK_JOBS: dict[str, str] = {
    "runbook_pauser": "pauses it",
    "runbook_undo_approver": "approves undoing it",
    "runbook_rerunner": "reruns it after a fix",
    "runbook_log_reader": "reads the logs",
}


def set_runbook(*, workflow: Workflow, actor: Actor, people: dict, notes: str) -> list[str]:
    """Name the people of `workflow`'s runbook (`people`: a user or None per field of RUNBOOK_JOBS)
    and its notes. Writes a `runbook_changed` event saying who now does which job; returns what
    changed, in words (empty: nothing changed, no event)."""

    def name(user) -> str:
        return user.get_username() if user is not None else "nobody"

    with transaction.atomic():
        locked = Workflow.objects.select_for_update(of=("self",)).select_related(*RUNBOOK_JOBS).get(pk=workflow.pk)
        changes, fields = [], {}
        for field_name, job in RUNBOOK_JOBS.items():
            old, new = getattr(locked, field_name), people.get(field_name)
            if (old.pk if old else None) != (new.pk if new else None):
                changes.append(f"{name(new)} {job} (was {name(old)})")
                fields[field_name] = new
        notes = notes.strip()
        if notes != locked.runbook_notes:
            changes.append("notes changed")
            fields["runbook_notes"] = notes
        if not changes:
            return []
        Workflow.objects.filter(pk=workflow.pk).update(**fields)
        for field_name, value in fields.items():
            setattr(workflow, field_name, value)
        details = {f: (v.pk if v is not None else None) if f in RUNBOOK_JOBS else v for f, v in fields.items()}
        audit.write(
            [
                audit.Entry(
                    Event.Kind.RUNBOOK_CHANGED,
                    actor,
                    f"{actor.label}: runbook of {workflow.name}: {'; '.join(changes)}.",
                    workflow_id=workflow.pk,
                    details=details,
                )
            ]
        )
    return changes


def _fields(
    change: Change, to: str, routing: rules.Routing, why: str | None, to_review: bool, actor: Actor, now
) -> dict:
    """What a held change's row says once it is routed again."""
    if to == S.QUEUED and change.approver_id:
        return {"enqueued_at": now}  # a person's approval stands, with the decision it was given on
    fields = {
        "decision": routing.decision,
        "review_group": routing.review_group,
        "approvals_required": routing.approvals_required,
        "decision_explanation": routing.explanation,
        "matched_rules": routing.matched,
        "rule_set": routing.rule_set,
        "default_rule_set": routing.defaults,
        "enqueued_at": now if to == S.QUEUED else None,
    }
    if change.approver_id:
        # Refused or asked again: the approval it had no longer decides it.
        fields |= {"approver": None, "decided_at": None}
    if to == S.PENDING_REVIEW and (why or to_review):
        # Back to a person, whatever the rules would do now: a review, by the group the rules name,
        # or the one it had, or the record type's owners. The earlier approval no longer counts
        # (a new review round begins with this move).
        review = routing.decision == D.REVIEW
        fields |= {
            "decision": D.REVIEW,
            "review_group": routing.review_group
            if review
            else change.review_group or registry.get(change.record_type).owner_group,
            "approvals_required": routing.approvals_required if review else max(change.approvals_required, 1),
            "decision_explanation": (
                f"Asked again: {why}." if why else f"Sent to review: {actor.label} sent everything held to review."
            )
            + f" The rules now say: {routing.explanation}",
        }
    return fields


def _approvals_to_ask_again(changes: list[Change], active: rules.ActiveRules | None) -> dict[int, str]:
    """Of changes a person approved, those whose approval no longer stands, each with why: the rules
    changed since it was given (another version is in force), or a record's value of a field it sets
    is no longer what it was then."""
    if not changes or active is None:
        return {}
    versions = {
        scope: sorted(
            RuleSet.objects.filter(workflow=scope).values_list("created_at", "version"), key=lambda row: row[0]
        )
        for scope in {changes[0].workflow, None}
    }
    now_in_force = {changes[0].workflow: active.rule_set, None: active.defaults}
    why: dict[int, str] = {}
    for change in changes:
        at = change.decided_at or change.updated_at
        who = change.approver.get_username()
        moved = []
        for scope, label in ((change.workflow, ""), (None, "global defaults ")):
            then = _version_at(versions[scope], at)
            current = now_in_force[scope].version if now_in_force[scope] else None
            if then != current:
                moved.append(f"{label}{_v(then)} → {_v(current)}")
        if moved:
            why[change.pk] = f"the rules changed since {who} approved it ({', '.join(moved)})"
            continue
        values = _values_changed_since(change, at)
        if values:
            why[change.pk] = f"{values} changed since {who} approved it"
    return why


def _version_at(versions: list, at) -> int | None:
    """The version in force at `at`: the latest saved by then."""
    found = None
    for created_at, version in versions:
        if created_at > at:
            break
        found = version
    return found


def _v(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


def _values_changed_since(change: Change, at) -> str:
    """ "the ticket's Tags", "the Status and Tags of 2 tickets": the fields `change` sets whose value
    on a target record differs now from the record's value at `at` (read from its history); ""."""
    if change.operation == Change.Operation.CREATE or not change.record_ids:
        return ""
    rtype = registry.get(change.record_type)
    names = [n for n in change.values_to_apply() if n in rtype.fields]
    if not names:
        return ""
    records = rtype.queryset().in_bulk(change.record_ids)
    changed_fields: set[str] = set()
    changed_records = 0
    for pk in change.record_ids:
        record = records.get(pk)
        then = rtype.model.history.filter(id=pk, history_date__lte=at).order_by("-history_date", "-history_id").first()
        if record is None or then is None:
            continue
        now_values, then_values = rtype.current_values(record, names), rtype.current_values(then, names)
        differ = {n for n in names if now_values[n] != then_values[n]}
        if differ:
            changed_fields |= differ
            changed_records += 1
    if not changed_fields:
        return ""
    labels = " and ".join(rtype.fields[n].label for n in names if n in changed_fields)
    if len(change.record_ids) == 1:
        return f"the {rtype.label}'s {labels}"
    return f"the {labels} of {changed_records} {rtype.plural if changed_records != 1 else rtype.label}"
