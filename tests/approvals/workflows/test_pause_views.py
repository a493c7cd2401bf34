"""Pausing and resuming in the browser: operators and admins only, a reason asked, an event
written, back where the form was; the automatic pause's settings, each change an event."""

from __future__ import annotations

import pytest

from approvals.lifecycle import Actor
from approvals.models import AutoPause, Change, Event, Workflow
from approvals.workflows.services import pause_workflow
from tests.factories import make_tickets, ticket_change

S = Change.Status


def post_queued(api, n=2):
    body = {
        "workflow": "ticket-triage",
        "run": "r-1",
        "changes": [ticket_change(t, f"op-{t.pk}") for t in make_tickets(n)],
    }
    response = api.post("/api/v1/changes/batch", body)
    assert response.status_code == 201, response.content
    return [c["id"] for c in response.json()["changes"]]


def test_an_operator_pauses_from_the_dashboard_and_comes_back_to_it(client, operator, api, workflow):
    ids = post_queued(api)
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/pause/", {"reason": "tags look wrong", "next": "/"}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    workflow.refresh_from_db()
    assert workflow.is_paused and workflow.pause_reason == "tags look wrong" and workflow.paused_by == operator
    assert set(Change.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.HELD}
    event = Event.objects.get(kind=Event.Kind.PAUSED)
    assert event.actor == operator
    page = response.content.decode()
    assert "Paused ticket-triage: 2 queued changes held. New proposals are recorded and held." in page


def test_a_next_address_elsewhere_is_not_followed(client, admin_user, workflow):
    client.force_login(admin_user)
    response = client.post("/workflows/ticket-triage/pause/", {"reason": "x", "next": "https://evil.example/"})
    assert response.url == "/workflows/ticket-triage/"


def test_a_pause_needs_a_short_reason(client, operator, workflow):
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/pause/", {"reason": "   "})
    assert response.status_code == 422
    assert "Say in a few words why you pause it" in response.content.decode()
    response = client.post("/workflows/ticket-triage/pause/", {"reason": "x" * 501})
    assert response.status_code == 422
    assert "Keep the reason short: at most 500 characters (it has 501)." in response.content.decode()
    workflow.refresh_from_db()
    assert not workflow.is_paused
    assert not Event.objects.filter(kind=Event.Kind.PAUSED).exists()


def test_pausing_a_paused_workflow_says_so(client, operator, workflow):
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="first")
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/pause/", {"reason": "again"}, follow=True)
    assert "ticket-triage was already paused by otto (first)." in response.content.decode()
    assert Event.objects.filter(kind=Event.Kind.PAUSED).count() == 1


@pytest.mark.parametrize("persona", ["reviewer", "support", "finance"])
def test_people_who_see_it_but_do_not_pause_get_the_reason(client, persona, request, workflow):
    client.force_login(request.getfixturevalue(persona))
    for url in ("pause/", "resume/", "auto-pause/", "runbook/"):
        response = client.post(f"/workflows/ticket-triage/{url}", {"reason": "mine"})
        assert response.status_code == 403
        assert "Only operators and admins pause and resume workflows." in response.content.decode()
    workflow.refresh_from_db()
    assert not workflow.is_paused
    assert not Event.objects.exists()


def test_outsiders_get_404_and_anonymous_visitors_log_in(client, outsider, workflow):
    assert client.post("/workflows/ticket-triage/pause/", {"reason": "x"}).url.startswith("/login/")
    client.force_login(outsider)
    assert client.post("/workflows/ticket-triage/pause/", {"reason": "x"}).status_code == 404
    assert not Workflow.objects.get().is_paused


def test_resuming_routes_what_was_held(client, operator, api, workflow):
    ids = post_queued(api)
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="checking")
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/resume/", follow=True)
    assert response.redirect_chain == [("/workflows/ticket-triage/", 302)]
    assert "Resumed ticket-triage. 2 held changes routed again: 2 queued." in response.content.decode()
    assert set(Change.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.QUEUED}
    assert Event.objects.filter(kind=Event.Kind.RESUMED, actor=operator).count() == 1


def test_resuming_can_send_everything_held_to_review(client, operator, api, workflow):
    ids = post_queued(api)
    pause_workflow(workflow=workflow, actor=Actor.person(operator), reason="checking")
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/resume/", {"to_review": "on"}, follow=True)
    assert "2 held changes sent to review, as asked." in response.content.decode()
    changes = Change.objects.filter(pk__in=ids)
    assert {(c.status, c.review_group) for c in changes} == {(S.PENDING_REVIEW, "support")}
    assert Event.objects.filter(change_id=ids[0], message__contains="sent everything it held to review").exists()
    assert dict(response.context["resumption"].outcomes)["sent to review"] == 2


def test_resuming_a_running_workflow_does_nothing(client, operator, workflow):
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/resume/", follow=True)
    assert "ticket-triage is running: there was nothing to resume." in response.content.decode()
    assert not Event.objects.exists()


def test_pause_and_resume_are_post_only(client, operator, workflow):
    client.force_login(operator)
    for url in ("pause/", "resume/", "auto-pause/", "runbook/"):
        assert client.get(f"/workflows/ticket-triage/{url}").status_code == 405


# The automatic pause's settings ------------------------------------------------------------


def settings_of(auto_pause: AutoPause, **changes) -> dict:
    names = [
        "window_minutes",
        "sample_size",
        "min_sample",
        "max_rejection_pct",
        "max_failure_pct",
        "max_undo_pct",
        "max_applied_per_minute",
        "max_same_value",
        "same_value_minutes",
    ]
    data = {n: "" if getattr(auto_pause, n) is None else getattr(auto_pause, n) for n in names}
    data["enabled"] = "on" if auto_pause.enabled else ""
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


def test_turning_the_automatic_pause_on_gives_the_defaults(client, operator, workflow):
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/auto-pause/", {"turn_on": "1"}, follow=True)
    assert "The automatic pause of ticket-triage is on." in response.content.decode()
    made = AutoPause.objects.get(workflow=workflow)
    assert (made.enabled, made.max_rejection_pct, made.updated_by) == (True, 30, operator)
    event = Event.objects.get(kind=Event.Kind.AUTO_PAUSE_CHANGED)
    assert event.message.startswith("otto: automatic pause of ticket-triage: turned on with window 60 minutes")
    assert "rejection threshold 30%" in event.message


def test_changing_a_threshold_says_what_changed(client, operator, workflow):
    current = AutoPause.objects.create(workflow=workflow)
    client.force_login(operator)
    response = client.post(
        "/workflows/ticket-triage/auto-pause/", settings_of(current, max_rejection_pct=25, max_undo_pct=""), follow=True
    )
    assert "Saved the automatic pause: rejection threshold 30% → 25%, undo threshold 20% → off." in (
        response.content.decode()
    )
    event = Event.objects.get(kind=Event.Kind.AUTO_PAUSE_CHANGED)
    assert event.message == (
        "otto: automatic pause of ticket-triage: rejection threshold 30% → 25%, undo threshold 20% → off."
    )
    current.refresh_from_db()
    assert (current.max_rejection_pct, current.max_undo_pct) == (25, None)
    # The same values again: nothing changed, no event.
    client.post("/workflows/ticket-triage/auto-pause/", settings_of(current))
    assert Event.objects.filter(kind=Event.Kind.AUTO_PAUSE_CHANGED).count() == 1


def test_turning_it_off_keeps_the_thresholds(client, operator, workflow):
    current = AutoPause.objects.create(workflow=workflow)
    client.force_login(operator)
    client.post("/workflows/ticket-triage/auto-pause/", settings_of(current, enabled=False))
    current.refresh_from_db()
    assert not current.enabled and current.max_rejection_pct == 30
    assert Event.objects.get(kind=Event.Kind.AUTO_PAUSE_CHANGED).message.endswith("automatic pause on → off.")
    page = client.get("/workflows/ticket-triage/").content.decode()
    assert "Automatic pause is off." in page


def test_a_wrong_threshold_is_sent_back_with_why(client, operator, workflow):
    current = AutoPause.objects.create(workflow=workflow)
    client.force_login(operator)
    response = client.post("/workflows/ticket-triage/auto-pause/", settings_of(current, max_failure_pct=150))
    assert response.status_code == 422
    assert "A share between 1% and 100%" in response.content.decode()
    assert not Event.objects.exists()
    current.refresh_from_db()
    assert current.max_failure_pct == 20
