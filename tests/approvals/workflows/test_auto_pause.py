"""The automatic pause: each signal pauses the workflow at its threshold and not one below, after
the event that moves it (review decisions, apply batches, undos), with the reason in numbers.

Transactional tests: the checks run once the decision or the batch commits, as in production."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals import lifecycle
from approvals.apply.services import apply_changes
from approvals.lifecycle import Actor
from approvals.models import AutoPause, Change, Event, Run, Workflow
from approvals.review import services as review
from approvals.workflows import auto_pause
from demo.models import Ticket
from tests.factories import make_tickets
from undo import services as undo_services
from undo.scopes import Scope

S = Change.Status
K = Event.Kind
pytestmark = pytest.mark.django_db(transaction=True)
_ops = itertools.count(1)
OFF = {
    "max_rejection_pct": None,
    "max_failure_pct": None,
    "max_undo_pct": None,
    "max_applied_per_minute": None,
    "max_same_value": None,
}


def breaker(workflow, **thresholds) -> AutoPause:
    """An automatic pause with small samples, every signal off but those given."""
    fields = {"window_minutes": 60, "sample_size": 10, "min_sample": 5, **OFF, **thresholds}
    return AutoPause.objects.create(workflow=workflow, **fields)


def admit(agent, workflow, tickets, *, values=None, decision=Change.Decision.REVIEW, run="r-1") -> list[Change]:
    """Changes tagging `tickets`, routed (`decision`) and stored as intake stores them."""
    run, _ = Run.objects.get_or_create(workflow=workflow, agent=agent, external_id=run)
    changes = [
        Change(
            run=run,
            workflow=workflow,
            agent=agent,
            operation_id=f"op-{next(_ops)}",
            body_hash="-",
            record_type="ticket",
            record_ids=[t.pk for t in ts] if isinstance(ts, list) else [ts.pk],
            values=values or {"tags": f"tag-{i}"},
            expected={},
            risk=0.1,
            confidence=0.9,
            decision=decision,
            review_group="support" if decision == Change.Decision.REVIEW else "",
        )
        for i, ts in enumerate(tickets)
    ]
    return lifecycle.admit(changes, actor=Actor.of_agent(agent), paused=False)


def applied(agent, workflow, tickets, **kwargs) -> list[Change]:
    changes = admit(agent, workflow, tickets, decision=Change.Decision.AUTO_APPLY, **kwargs)
    apply_changes(change_ids=[c.pk for c in changes])
    return changes


def paused(workflow) -> Workflow:
    workflow.refresh_from_db()
    return workflow


# Rejections ----------------------------------------------------------------------------


def decide(changes, user, *, approve: int, reject: int) -> None:
    """Approve `approve` of the changes, then reject `reject` more, one click each."""
    for change in changes[:approve]:
        review.approve_change(change=change, user=user)
    for change in changes[approve : approve + reject]:
        review.reject_change(change=change, user=user, reason="wrong tag")


def test_rejections_pause_at_the_threshold(agent, workflow, support):
    breaker(workflow, max_rejection_pct=30)
    changes = admit(agent, workflow, make_tickets(10))
    decide(changes, support, approve=7, reject=3)
    workflow = paused(workflow)
    assert workflow.is_paused
    reason = "paused automatically: 3 of the last 10 reviewed changes were rejected — 30%, threshold 30%"
    assert workflow.pause_reason == reason
    assert workflow.paused_by_label == "system (automatic pause)" and workflow.paused_by is None
    event = Event.objects.get(kind=K.PAUSED)
    assert event.actor_label == "system (automatic pause)"
    assert event.details["signal"] == "rejections"
    assert event.details["numbers"] == {"bad": 3, "total": 10, "pct": 30, "threshold_pct": 30, "min_sample": 5}
    assert event.details["reason"] == reason


def test_rejections_one_below_the_threshold_do_not_pause(agent, workflow, support):
    breaker(workflow, max_rejection_pct=30)
    decide(admit(agent, workflow, make_tickets(10)), support, approve=8, reject=2)
    assert not paused(workflow).is_paused


def test_only_the_latest_sample_counts(agent, workflow, support):
    config = breaker(workflow)  # off while the decisions are made
    changes = admit(agent, workflow, make_tickets(14))
    for change in changes[:3]:
        review.reject_change(change=change, user=support, reason="no")
    decide(changes[3:13], support, approve=10, reject=0)
    # 3 of all 13 would be 23%; of the last 10 decisions none was a rejection.
    AutoPause.objects.filter(pk=config.pk).update(max_rejection_pct=20)
    review.approve_change(change=changes[13], user=support)
    assert not paused(workflow).is_paused
    reading = next(r for r in auto_pause.readings(workflow) if r.signal == "rejections")
    assert reading.reads == "0 of the last 10 reviewed changes were rejected — 0%"


def test_a_rate_needs_its_minimum_sample(agent, workflow, support):
    breaker(workflow, max_rejection_pct=30)
    decide(admit(agent, workflow, make_tickets(4)), support, approve=0, reject=4)  # 100%, but only 4
    assert not paused(workflow).is_paused
    reading = next(r for r in auto_pause.readings(workflow) if r.signal == "rejections")
    assert reading.reads == "4 reviewed changes in the last 60 minutes; a rate needs 5"
    review.reject_change(change=admit(agent, workflow, make_tickets(1))[0], user=support, reason="no")
    assert paused(workflow).is_paused


def test_one_approval_of_several_is_not_a_decision(agent, workflow, support, reviewer):
    breaker(workflow, max_rejection_pct=30)
    changes = admit(agent, workflow, make_tickets(10))
    Change.objects.filter(pk__in=[c.pk for c in changes[:7]]).update(approvals_required=2)
    for change in changes[:7]:
        review.approve_change(change=Change.objects.get(pk=change.pk), user=support)  # 1 of 2: no decision
    decide(changes[7:], support, approve=0, reject=3)
    # Only the 3 rejections are decisions: below the minimum sample of 5... until the 7 complete.
    assert not paused(workflow).is_paused
    for change in changes[:7]:
        review.approve_change(change=Change.objects.get(pk=change.pk), user=reviewer)
    assert paused(workflow).is_paused  # 3 of 10 decisions were rejections


def test_older_decisions_are_outside_the_window(agent, workflow, support):
    breaker(workflow, max_rejection_pct=30)
    changes = admit(agent, workflow, make_tickets(10))
    decide(changes[:4], support, approve=0, reject=4)
    Event.objects.filter(kind=K.REJECTED).update(created_at=timezone.now() - timedelta(minutes=61))
    decide(changes[4:], support, approve=6, reject=0)
    assert not paused(workflow).is_paused  # 0 of the 6 decisions in the window
    review.reject_change(change=admit(agent, workflow, make_tickets(1))[0], user=support, reason="no")
    assert not paused(workflow).is_paused  # 1 of 7 in the window: 14%


def test_bulk_decisions_are_checked_once(agent, workflow, support, monkeypatch):
    breaker(workflow, max_rejection_pct=30)
    changes = admit(agent, workflow, make_tickets(10))
    calls = []
    real = auto_pause.check
    monkeypatch.setattr(auto_pause, "check", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    review.approve_many(change_ids=[c.pk for c in changes[:7]], user=support)
    review.reject_many(change_ids=[c.pk for c in changes[7:]], user=support, reason="wrong tag")
    assert calls == [(workflow.pk, auto_pause.AFTER_REVIEW)] * 2
    assert paused(workflow).is_paused


# Apply failures and conflicts -------------------------------------------------------------


def test_conflicts_pause_at_the_threshold(agent, workflow):
    breaker(workflow, max_failure_pct=30)
    tickets = make_tickets(10)
    applied(agent, workflow, tickets[:7])
    changes = admit(agent, workflow, tickets[7:], decision=Change.Decision.AUTO_APPLY)
    Change.objects.filter(pk__in=[c.pk for c in changes]).update(expected={str(t.pk): {"tags": "x"} for t in tickets})
    apply_changes(change_ids=[c.pk for c in changes])
    assert set(Change.objects.filter(pk__in=[c.pk for c in changes]).values_list("status", flat=True)) == {S.CONFLICT}
    workflow = paused(workflow)
    assert workflow.pause_reason == (
        "paused automatically: 3 of the last 10 applies failed or hit a conflict (0 failed, 3 conflicts) "
        "— 30%, threshold 30%"
    )


def test_failures_one_below_the_threshold_do_not_pause(agent, workflow):
    breaker(workflow, max_failure_pct=30)
    tickets = make_tickets(10)
    applied(agent, workflow, tickets[:8])
    changes = admit(agent, workflow, tickets[8:], decision=Change.Decision.AUTO_APPLY)
    Ticket.all_objects.filter(pk__in=[t.pk for t in tickets[8:]]).delete()  # a missing record fails
    apply_changes(change_ids=[c.pk for c in changes])
    assert set(Change.objects.filter(pk__in=[c.pk for c in changes]).values_list("status", flat=True)) == {S.FAILED}
    assert not paused(workflow).is_paused
    reading = next(r for r in auto_pause.readings(workflow) if r.signal == "failures")
    assert reading.reads.startswith("2 of the last 10 applies failed or hit a conflict (2 failed, 0 conflicts)")
    assert not reading.tripped


# Undos ---------------------------------------------------------------------------------


def test_undos_pause_at_the_threshold(agent, workflow, support):
    breaker(workflow, max_undo_pct=30)
    tickets = make_tickets(10)
    applied(agent, workflow, tickets[:7], run="good")
    applied(agent, workflow, tickets[7:], run="bad")
    assert not paused(workflow).is_paused
    bad = Run.objects.get(external_id="bad")
    undo_services.request_undo(scope=Scope(run_id=bad.pk), description="the bad run", user=support)
    workflow = paused(workflow)
    assert workflow.pause_reason == (
        "paused automatically: 3 of the last 10 applied changes were undone — 30%, threshold 30%"
    )
    assert Event.objects.get(kind=K.PAUSED).details["signal"] == "undos"


def test_undos_one_below_the_threshold_do_not_pause(agent, workflow, support):
    breaker(workflow, max_undo_pct=30)
    tickets = make_tickets(10)
    applied(agent, workflow, tickets[:8], run="good")
    applied(agent, workflow, tickets[8:], run="bad")
    bad = Run.objects.get(external_id="bad")
    undo_services.request_undo(scope=Scope(run_id=bad.pk), description="the bad run", user=support)
    assert Change.objects.filter(status=S.UNDONE).count() == 2
    assert not paused(workflow).is_paused


# Burst ---------------------------------------------------------------------------------


def test_a_burst_pauses_above_the_ceiling(agent, workflow):
    breaker(workflow, max_applied_per_minute=5)
    tickets = make_tickets(6)
    applied(agent, workflow, tickets[:5])
    assert not paused(workflow).is_paused  # 5 is not more than 5
    applied(agent, workflow, tickets[5:])
    workflow = paused(workflow)
    assert workflow.pause_reason == "paused automatically: 6 changes were applied in the last minute, more than 5"


def test_changes_applied_over_a_minute_ago_are_no_burst(agent, workflow):
    breaker(workflow, max_applied_per_minute=5)
    tickets = make_tickets(6)
    applied(agent, workflow, tickets[:5])
    Change.objects.update(applied_at=timezone.now() - timedelta(seconds=61))
    applied(agent, workflow, tickets[5:])
    assert not paused(workflow).is_paused


# Same value ------------------------------------------------------------------------------


def test_the_same_value_on_more_records_than_the_ceiling_pauses(agent, workflow):
    breaker(workflow, max_same_value=5, same_value_minutes=10)
    tickets = make_tickets(6)
    applied(agent, workflow, tickets[:5], values={"tags": "spam"})
    assert not paused(workflow).is_paused  # 5 records: not more than 5
    applied(agent, workflow, tickets[5:], values={"tags": "spam"})
    workflow = paused(workflow)
    assert workflow.pause_reason == (
        "paused automatically: 'Tags' was set to spam on 6 tickets in the last 10 minutes, more than 5"
    )
    event = Event.objects.get(kind=K.PAUSED)
    assert event.details["signal"] == "same_value"
    assert event.details["numbers"] == {
        "record_type": "ticket",
        "field": "tags",
        "value": "spam",
        "records": 6,
        "minutes": 10,
        "threshold": 5,
    }


def test_a_runaway_batch_is_paused_in_its_middle(agent, workflow):
    """One batch of 20 spam tags, a ceiling of 5: the sixth record pauses it, the rest are held."""
    breaker(workflow, max_same_value=5, same_value_minutes=10)
    tickets = make_tickets(20)
    changes = admit(agent, workflow, tickets, values={"tags": "spam"}, decision=Change.Decision.AUTO_APPLY)
    counts = apply_changes(change_ids=[c.pk for c in changes])
    assert (counts["applied"], counts["held"]) == (6, 14)
    assert paused(workflow).pause_reason == (
        "paused automatically: 'Tags' was set to spam on 6 tickets in the last 10 minutes, more than 5"
    )
    assert Ticket.objects.filter(tags="spam").count() == 6
    assert Event.objects.filter(kind=K.PAUSED).count() == 1


def test_a_burst_is_paused_in_the_middle_of_its_batch(agent, workflow):
    breaker(workflow, max_applied_per_minute=5)
    changes = admit(agent, workflow, make_tickets(12), decision=Change.Decision.AUTO_APPLY)
    counts = apply_changes(change_ids=[c.pk for c in changes])
    assert (counts["applied"], counts["held"]) == (6, 6)
    assert (
        paused(workflow).pause_reason == "paused automatically: 6 changes were applied in the last minute, more than 5"
    )


def test_counting_on_in_the_batch_reads_no_query_per_change(agent, workflow):
    breaker(workflow, max_applied_per_minute=1000, max_same_value=1000)
    batch = admit(agent, workflow, make_tickets(50), values={"tags": "spam"}, decision=Change.Decision.AUTO_APPLY)
    with CaptureQueriesContext(connection) as reading:
        tally = auto_pause.Tally.before(batch)
    with CaptureQueriesContext(connection) as counting:
        for change in batch:
            change.applied_record_ids = change.record_ids
            tally.applied(change)
    # The window read once for the batch (its config, last resume, burst count, one GROUP BY).
    assert len(reading) <= 4
    assert len(counting) == 0
    assert tally.same[(workflow.pk, "ticket", "tags", "spam")] == 50


def test_after_a_tallied_batch_only_what_it_could_not_count_is_read_again(agent, workflow):
    breaker(workflow, max_applied_per_minute=1000, max_same_value=1000)
    batch = admit(agent, workflow, make_tickets(3), values={"tags": "spam"}, decision=Change.Decision.AUTO_APPLY)
    tally = auto_pause.Tally.before(batch)
    for change in batch:
        change.applied_record_ids = change.record_ids
        tally.applied(change)
    Change.objects.filter(pk__in=[c.pk for c in batch]).update(applied_at=timezone.now())
    assert tally.still_to_check([workflow.pk]) == {workflow.pk: (auto_pause.FAILURES,)}
    # Another worker applied one of the workflow's changes meanwhile: its counts are read again.
    other = admit(agent, workflow, make_tickets(1), decision=Change.Decision.AUTO_APPLY)[0]
    Change.objects.filter(pk=other.pk).update(applied_at=timezone.now())
    assert tally.still_to_check([workflow.pk]) == {workflow.pk: auto_pause.AFTER_APPLY}


def test_a_change_to_several_records_counts_each_record(agent, workflow):
    breaker(workflow, max_same_value=5)
    tickets = make_tickets(6)
    applied(agent, workflow, [tickets[:3]], values={"tags": "spam"})
    assert not paused(workflow).is_paused
    applied(agent, workflow, [tickets[3:]], values={"tags": "spam"})
    assert "set to spam on 6 tickets" in paused(workflow).pause_reason


def test_different_values_do_not_add_up(agent, workflow):
    breaker(workflow, max_same_value=5)
    applied(agent, workflow, make_tickets(12))  # tag-0 … tag-11
    assert not paused(workflow).is_paused


def test_a_reviewers_correction_is_what_counts(agent, workflow, support):
    breaker(workflow, max_same_value=5)
    tickets = make_tickets(6)
    applied(agent, workflow, tickets[:5], values={"tags": "spam"})
    change = admit(agent, workflow, tickets[5:], values={"tags": "spam"})[0]
    review.approve_change(change=change, user=support, values={"tags": "billing"})
    apply_changes(change_ids=[change.pk])
    assert Change.objects.get(pk=change.pk).status == S.APPLIED
    assert not paused(workflow).is_paused


def test_the_same_value_long_ago_is_outside_its_minutes(agent, workflow):
    breaker(workflow, max_same_value=5, same_value_minutes=10)
    tickets = make_tickets(6)
    applied(agent, workflow, tickets[:5], values={"tags": "spam"})
    Change.objects.update(applied_at=timezone.now() - timedelta(minutes=11))
    applied(agent, workflow, tickets[5:], values={"tags": "spam"})
    assert not paused(workflow).is_paused


def test_what_paused_it_does_not_pause_it_again_once_resumed(agent, workflow, operator):
    from approvals.workflows.services import resume_workflow

    breaker(workflow, max_same_value=5)
    tickets = make_tickets(7)
    applied(agent, workflow, tickets[:6], values={"tags": "spam"})
    assert paused(workflow).is_paused
    resume_workflow(workflow=workflow, actor=Actor.person(operator))
    applied(agent, workflow, tickets[6:], values={"tags": "spam"})
    assert not paused(workflow).is_paused  # counted since the resume: 1 record


# Off -----------------------------------------------------------------------------------


def test_no_automatic_pause_never_pauses(agent, workflow):
    applied(agent, workflow, make_tickets(30), values={"tags": "spam"})
    assert not paused(workflow).is_paused
    assert auto_pause.readings(workflow) == []


def test_a_disabled_automatic_pause_never_pauses(agent, workflow):
    config = breaker(workflow, max_same_value=5, max_applied_per_minute=5)
    config.enabled = False
    config.save()
    applied(agent, workflow, make_tickets(10), values={"tags": "spam"})
    assert not paused(workflow).is_paused


def test_the_defaults_are_sensible(workflow):
    config = AutoPause.objects.create(workflow=workflow)
    assert (config.window_minutes, config.sample_size, config.min_sample) == (60, 20, 10)
    assert (config.max_rejection_pct, config.max_failure_pct, config.max_undo_pct) == (30, 20, 20)
    assert (config.max_applied_per_minute, config.max_same_value, config.same_value_minutes) == (300, 30, 10)


def test_readings_say_each_signal_in_plain_words(agent, workflow):
    AutoPause.objects.create(workflow=workflow)
    applied(agent, workflow, make_tickets(3), values={"tags": "billing"})
    read = {r.signal: r for r in auto_pause.readings(workflow)}
    assert list(read) == list(auto_pause.SIGNALS)
    assert read["rejections"].reads == "0 reviewed changes in the last 60 minutes; a rate needs 10"
    assert read["rejections"].threshold == "30% or more, once 10 reviewed changes are counted"
    assert read["failures"].reads == "3 applies in the last 60 minutes; a rate needs 10"
    assert read["burst"].reads == "3 changes applied in the last minute"
    assert read["burst"].threshold == "more than 300 a minute"
    assert read["same_value"].reads == "'Tags' was set to billing on 3 tickets in the last 10 minutes"
    assert read["same_value"].threshold == "more than 30 records within 10 minutes"
    assert not any(r.tripped for r in read.values())


def test_a_failing_check_never_fails_the_apply(agent, workflow, monkeypatch, caplog):
    breaker(workflow, max_same_value=1)

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(auto_pause, "check", broken)
    changes = applied(agent, workflow, make_tickets(3), values={"tags": "spam"})
    assert set(Change.objects.filter(pk__in=[c.pk for c in changes]).values_list("status", flat=True)) == {S.APPLIED}
    assert "automatic pause: could not check workflow" in caplog.text
