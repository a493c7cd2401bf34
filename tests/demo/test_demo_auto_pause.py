"""The demo's automatic pause, with its default thresholds: the bad run (60 tickets tagged spam,
auto-applied) pauses ticket-triage; the good runs, posted twice within ten minutes, pause nothing."""

from __future__ import annotations

import random
import re
import time

import pytest
from countersign_client import Client
from django.contrib.auth.models import User
from django.core.management import call_command

from approvals.apply.services import apply_changes
from approvals.models import AutoPause, Change, Event, Run, Workflow
from approvals.review.services import approve_change
from approvals.workflows import auto_pause
from approvals.workflows.alerts import send_pause_alert
from demo.management.commands import demo_agent

S = Change.Status
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(live_server, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.SITE_URL = live_server.url
    call_command("seed_demo")
    return Client(live_server.url, token=(tmp_path / "demo_agent_token").read_text().strip())


def apply_queued(run: Run) -> None:
    """What the workers do with a run's queued changes (the test's broker is closed)."""
    apply_changes(change_ids=list(run.changes.filter(status=S.QUEUED).order_by("id").values_list("pk", flat=True)))


def approve_waiting(run: Run) -> None:
    admin = User.objects.get(username="admin")
    for change in run.changes.filter(status=S.PENDING_REVIEW).order_by("id"):
        approve_change(change=change, user=admin)


def test_seed_demo_gives_each_workflow_the_default_automatic_pause_and_a_runbook(demo):
    for workflow in Workflow.objects.all():
        assert AutoPause.objects.get(workflow=workflow).max_same_value == 30
        people = [workflow.runbook_pauser, workflow.runbook_undo_approver, workflow.runbook_rerunner]
        assert all(p is not None and p.is_active and p.email for p in [*people, workflow.runbook_log_reader])
    triage = Workflow.objects.get(name="ticket-triage")
    assert [triage.runbook_pauser.username, triage.runbook_undo_approver.username] == ["maya", "chris"]
    assert Workflow.objects.get(name="refund-bot").runbook_undo_approver.groups.filter(name="finance").exists()
    call_command("seed_demo")  # twice: nothing doubles, nothing is overwritten
    assert AutoPause.objects.count() == 3


def test_the_bad_run_pauses_ticket_triage_and_alerts_its_runbook(demo, mailoutbox, settings):
    call_command("demo_agent", seed=1)
    runs = list(Run.objects.order_by("id"))
    assert [r.external_id.rsplit("-", 1)[0] for r in runs] == ["triage", "accounts", "refunds", "bad-tags"]
    for run in runs[:3]:
        apply_queued(run)
        assert not Workflow.objects.filter(state=Workflow.State.PAUSED).exists()
    bad = runs[3]
    assert bad.changes.filter(status=S.QUEUED).count() > 30
    apply_queued(bad)
    # (A ticket the triage run tagged first is a conflict: the agent saw it untagged.)
    spam = bad.changes.filter(status=S.APPLIED).count()
    # Paused in the middle of the run's batch: the 31st spam tag crossed the ceiling of 30, and
    # what came after it is held, not written.
    assert spam == 31
    assert bad.changes.filter(status=S.HELD).count() > 0

    triage = Workflow.objects.get(name="ticket-triage")
    assert triage.is_paused
    assert re.fullmatch(
        r"paused automatically: 'Tags' was set to spam on (\d+) tickets in the last 10 minutes, more than 30",
        triage.pause_reason,
    )
    assert f"on {spam} tickets" in triage.pause_reason
    assert Workflow.objects.filter(state=Workflow.State.PAUSED).count() == 1
    pause = Event.objects.get(kind=Event.Kind.PAUSED)
    assert pause.details["signal"] == "same_value"

    # The demo agent again, minutes later: ticket-triage holds its changes; the others run on.
    time.sleep(1.1)  # the demo agent names its operations by the second
    call_command("demo_agent", seed=2)
    for run in Run.objects.filter(pk__gt=bad.pk).order_by("id"):
        apply_queued(run)
        if run.workflow.name == "ticket-triage":
            assert not run.changes.filter(status__in=[S.QUEUED, S.APPLIED]).exists()
    assert list(Workflow.objects.filter(state=Workflow.State.PAUSED).values_list("name", flat=True)) == [
        "ticket-triage"
    ]
    assert Event.objects.filter(kind=Event.Kind.PAUSED).count() == 1

    send_pause_alert(event_id=pause.pk)
    mail = mailoutbox[-1]
    assert {"maya@countersign-demo.example", "chris@countersign-demo.example"} <= set(mail.to)
    assert (
        "- maya pauses it\n- chris approves undoing it\n- lee reruns it after a fix\n- sam reads the logs" in mail.body
    )
    assert f"{settings.SITE_URL}/workflows/ticket-triage/" in mail.body


def test_the_good_runs_twice_within_ten_minutes_pause_nothing(demo):
    rng = random.Random(7)
    for round_ in ("a", "b"):
        for workflow, make in (
            ("ticket-triage", demo_agent._triage),
            ("account-sync", demo_agent._emails),
            ("refund-bot", demo_agent._refunds),
        ):
            external_id = f"{workflow}-{round_}"
            demo.propose_batch(workflow=workflow, run=external_id, changes=make(rng, round_))
            run = Run.objects.get(external_id=external_id)
            apply_queued(run)
            approve_waiting(run)  # a reviewer approves everything the good runs sent to review
            apply_queued(run)
    assert Change.objects.filter(status=S.APPLIED).count() > 70
    assert not Workflow.objects.filter(state=Workflow.State.PAUSED).exists()
    for workflow in Workflow.objects.all():
        assert not any(r.tripped for r in auto_pause.readings(workflow)), auto_pause.readings(workflow)
