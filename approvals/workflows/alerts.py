"""The pause alert: on every pause (by a person, the automatic pause or an alerting tool), one email
to the workflow's runbook people and its owner saying what was paused, by whom, when, why, what is
held, who does what now, and where the workflow's page is.

`pause_workflow` hands it to the workers through the outbox, in the pause's transaction; the task
(`tasks.send_pause_alert_task`) may run twice and sends once: an `alerted` event records each
pause alerted.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..models import Event, Workflow

# The runbook's jobs: the workflow's field and what its holder does, as the alert says it.
RUNBOOK_JOBS = [
    ("runbook_pauser", "pauses it"),
    ("runbook_undo_approver", "approves undoing it"),
    ("runbook_rerunner", "reruns it after a fix"),
    ("runbook_log_reader", "reads the logs"),
]


def send_pause_alert(*, event_id: int) -> bool:
    """Email the alert of the pause recorded by event `event_id`, unless it was sent already;
    returns whether this call sent it."""
    with transaction.atomic():
        # Locked (on SQLite the IMMEDIATE transaction is): two runs of the task at once send once.
        pause = (
            Event.objects.select_for_update(of=("self",))
            .select_related("workflow")
            .get(pk=event_id, kind=Event.Kind.PAUSED)
        )
        workflow = Workflow.objects.select_related(*(job for job, _ in RUNBOOK_JOBS), "owner").get(pk=pause.workflow_id)
        if Event.objects.filter(workflow=workflow, kind=Event.Kind.ALERTED, details__pause_event=pause.pk).exists():
            return False
        recipients = recipients_of(workflow)
        actor = audit.Actor.system("pause alert")
        if recipients:
            # Sent inside the transaction: if sending fails nothing is recorded and the outbox runs the
            # task again; if it succeeds the event below commits with it.
            send_mail(_subject(workflow, pause), body(workflow, pause), None, recipients)
            text = (
                f"{actor.label}: e-mailed {', '.join(recipients)} that {workflow.name} was paused "
                f"({pause.details.get('reason', pause.message)}). Next: they follow its runbook."
            )
        else:
            text = (
                f"{actor.label}: nobody to e-mail that {workflow.name} was paused: its runbook names nobody "
                "active with an address, nor has its owner one. Next: name people in its runbook."
            )
        details = {"pause_event": pause.pk, "recipients": recipients}
        audit.write([audit.Entry(Event.Kind.ALERTED, actor, text, workflow_id=workflow.pk, details=details)])
    return bool(recipients)


def recipients_of(workflow: Workflow) -> list[str]:
    """The addresses of the runbook's people and the owner: each once, active, with an address."""
    people = [getattr(workflow, job) for job, _ in RUNBOOK_JOBS] + [workflow.owner]
    return sorted({p.email for p in people if p is not None and p.is_active and p.email})


def runbook_lines(workflow: Workflow) -> list[str]:
    """ "maya pauses it", … one line per job; a job nobody (active) holds is flagged."""
    lines = []
    for job, does in RUNBOOK_JOBS:
        person = getattr(workflow, job)
        if person is None:
            lines.append(f"nobody {does} — NOBODY HOLDS THIS JOB: name someone on the workflow's page")
        elif not person.is_active:
            lines.append(f"{person.get_username()} {does} — BUT THEIR ACCOUNT IS DISABLED: name someone else")
        else:
            lines.append(f"{person.get_username()} {does}")
    return lines


def page_url(workflow: Workflow) -> str:
    return f"{settings.SITE_URL.rstrip('/')}{workflow.get_absolute_url()}"


def _subject(workflow: Workflow, pause: Event) -> str:
    return f"[Countersign] {workflow.name} is paused ({pause.actor_label})"


def body(workflow: Workflow, pause: Event) -> str:
    """The alert's text, in the order people on call ask: what, who, when, why, what waits, who does what."""
    details = pause.details or {}
    held, applying = len(details.get("held", [])), len(details.get("applying", []))
    when = timezone.localtime(pause.created_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [
        f"The workflow {workflow} ({workflow.name}) is paused: nothing of it is applied until it is resumed.",
        "",
        f"Paused by: {pause.actor_label}",
        f"When: {when}",
        f"Why: {details.get('reason') or pause.message}",
        "",
        "What is held:",
        f"- {_n(held, 'change')} queued for the workers {'was' if held == 1 else 'were'} held;",
    ]
    if applying:
        lines.append(
            f"- {_n(applying, 'change')} a worker had claimed: each finishes if it was already writing, "
            "else it is held;"
        )
    lines += [
        "- new proposals and approvals are recorded and held; undo, restore and review keep working.",
        "",
        "The runbook:",
        *(f"- {line}" for line in runbook_lines(workflow)),
    ]
    if workflow.runbook_notes:
        lines += ["", f"Notes: {workflow.runbook_notes}"]
    lines += ["", f"The workflow's page (held changes, resume): {page_url(workflow)}"]
    return "\n".join(lines)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
