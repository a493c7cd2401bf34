"""A workflow's page: its state in words, the counts at a glance, its runs, its automatic pause,
what a pause held and what a resume did with it, and its events."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.lifecycle import Actor
from approvals.models import AutoPause, Change, Event
from approvals.workflows.services import pause_workflow, resume_workflow
from tests.factories import make_tickets, make_workflow, ticket_change

S = Change.Status


def post(api, tickets, run="r-1", risk=0.1):
    body = {
        "workflow": "ticket-triage",
        "run": run,
        "changes": [ticket_change(t, f"{run}-{t.pk}", risk=risk) for t in tickets],
    }
    response = api.post("/api/v1/changes/batch", body)
    assert response.status_code == 201, response.content
    return [c["id"] for c in response.json()["changes"]]


def glance(response) -> dict[str, tuple[int, int]]:
    return {c.key: (c.last_hour, c.total) for c in response.context["counts"]}


def test_a_running_workflow_reads_running_with_its_counts(client, support, api, workflow):
    ids = post(api, make_tickets(9))
    old = timezone.now() - timedelta(hours=3)
    # Statuses set directly: this test is about counting, not moving.
    Change.objects.filter(pk__in=ids[:3]).update(status=S.APPLIED, applied_at=timezone.now())
    Change.objects.filter(pk=ids[3]).update(status=S.APPLIED, updated_at=old)
    Change.objects.filter(pk=ids[4]).update(status=S.FAILED)
    Change.objects.filter(pk=ids[5]).update(status=S.CONFLICT, updated_at=old)
    Change.objects.filter(pk=ids[6]).update(status=S.UNDONE)
    Change.objects.filter(pk=ids[7]).update(status=S.PENDING_REVIEW)
    # ids[8] stays queued: in flight.
    client.force_login(support)
    response = client.get("/workflows/ticket-triage/")
    assert response.status_code == 200
    assert glance(response) == {
        "applied": (3, 4),
        "in_flight": (1, 1),
        "held": (0, 0),
        "waiting": (1, 2),
        "failed": (1, 2),
        "undone": (1, 1),
    }
    page = response.content.decode()
    assert '<p class="state-words running">Running</p>' in page
    assert "Automatic pause is off." in page
    assert 'href="/workflows/ticket-triage/rules/"' in page
    # A support person sees it but does not pause it.
    assert 'action="/workflows/ticket-triage/pause/"' not in page
    assert "Operators and admins pause and resume workflows." in page


def test_the_counts_cost_one_query_whatever_their_number(client, operator, api, workflow):
    client.force_login(operator)
    post(api, make_tickets(3), run="r-1")
    client.get("/workflows/ticket-triage/")
    counts = []
    for run in ("r-2", "r-3"):
        post(api, make_tickets(5), run=run)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/workflows/ticket-triage/").status_code == 200
        counts.append(len(queries))
        aggregates = [
            q for q in queries if 'COUNT("approvals_change"."id") FILTER' in q["sql"] or "COUNT(CASE" in q["sql"]
        ]
        assert len([q for q in aggregates if "updated_at" in q["sql"]]) == 1
    assert counts[0] == counts[1]


def test_its_recent_runs_say_their_state(client, operator, api, workflow):
    applied = post(api, make_tickets(2), run="r-done")
    Change.objects.filter(pk__in=applied).update(status=S.APPLIED)
    post(api, make_tickets(1), run="r-review", risk=0.9)
    client.force_login(operator)
    runs = {line.run.external_id: line for line in client.get("/workflows/ticket-triage/").context["runs"]}
    assert runs["r-done"].state == "finished"
    assert [(c.status, c.n) for c in runs["r-done"].counts] == [(S.APPLIED, 2)]
    assert runs["r-review"].state == "waiting for review"


def test_a_paused_workflow_shows_what_was_held_and_where_each_is_now(client, operator, api, workflow):
    ids = post(api, make_tickets(3))
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="tags look <wrong>")
    # One of them ran anyway (say, undone by hand later), one was refused since: the page says so.
    Change.objects.filter(pk=ids[0]).update(status=S.APPLIED)
    Change.objects.filter(pk=ids[1]).update(status=S.REFUSED)
    client.force_login(operator)
    response = client.get("/workflows/ticket-triage/")
    page = response.content.decode()
    assert '<p class="state-words paused">Paused</p>' in page
    assert "by otto: tags look &lt;wrong&gt;" in page
    moment = response.context["pause_moment"]
    assert [d.change.pk for d in moment.ran] == [ids[0]]
    assert [d.change.pk for d in moment.waiting] == [ids[2]]
    assert [d.change.pk for d in moment.stopped] == [ids[1]]
    assert "Already ran (1)" in page and "Still waiting (1)" in page and "Will not run (1)" in page
    assert [d.change.pk for d in response.context["held"]] == [ids[2]]
    assert 'action="/workflows/ticket-triage/resume/"' in page
    assert "Send everything held to review" in page


def test_after_a_resume_the_page_counts_each_outcome(client, operator, api, workflow):
    post(api, make_tickets(2))
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="checking")
    resume_workflow(workflow=workflow, actor=Actor.person(operator))
    client.force_login(operator)
    response = client.get("/workflows/ticket-triage/")
    outcomes = dict(response.context["resumption"].outcomes)
    assert outcomes["queued for the workers"] == 2
    assert outcomes["sent to review"] == 0
    assert response.context["pause_moment"] is not None  # the last pause is still described
    assert "When it was resumed" in response.content.decode()


def test_its_events_are_its_own_newest_first(client, operator, workflow):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="first")
    resume_workflow(workflow=workflow, actor=Actor.person(operator))
    client.force_login(operator)
    events = client.get("/workflows/ticket-triage/").context["events"]
    assert [e.kind for e in events] == [Event.Kind.RESUMED, Event.Kind.PAUSED]


def test_the_automatic_pause_reads_its_thresholds(client, operator, workflow):
    AutoPause.objects.create(workflow=workflow, max_undo_pct=None)
    client.force_login(operator)
    page = client.get("/workflows/ticket-triage/").content.decode()
    assert "Rejected in review" in page
    assert "30% or more, once 10 reviewed changes are counted" in page
    assert "20% or more, once 10 applied changes are counted" not in page  # that signal is off
    assert "Change the thresholds" in page


def test_outsiders_and_unknown_workflows_get_404(client, outsider, operator):
    make_workflow("ticket-triage")
    client.force_login(outsider)
    assert client.get("/workflows/ticket-triage/").status_code == 404
    client.force_login(operator)
    assert client.get("/workflows/nope/").status_code == 404


def test_the_dashboard_links_each_workflow_and_offers_its_switch(client, operator, support):
    make_workflow("ticket-triage")
    make_workflow("refund-bot", state="paused", paused_by_label="maya", paused_at=timezone.now())
    client.force_login(operator)
    page = client.get("/").content.decode()
    assert 'href="/workflows/ticket-triage/"' in page
    assert 'action="/workflows/ticket-triage/pause/"' in page and 'name="reason" required' in page
    assert 'action="/workflows/refund-bot/resume/"' in page
    assert 'href="/workflows/stop-all/"' in page
    client.force_login(support)
    page = client.get("/").content.decode()
    assert 'href="/workflows/ticket-triage/"' in page
    assert "/pause/" not in page and "/resume/" not in page and "stop-all" not in page


def test_a_long_pause_list_is_counted_whole_and_listed_in_part(client, operator, api, workflow, monkeypatch):
    from approvals.workflows import selectors

    monkeypatch.setattr(selectors, "_SLICE", 2)  # counted in several slices
    ids = post(api, make_tickets(5))
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="checking")
    Change.objects.filter(pk__in=ids[3:]).update(status=S.APPLIED)
    moment = selectors.pause_moment(workflow, limit=3)
    assert moment.counts == {"ran": 2, "waiting": 3, "stopped": 0}
    assert (moment.total, moment.shown, len(moment.waiting), moment.ran) == (5, 3, 3, [])
