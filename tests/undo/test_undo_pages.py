"""The browser side of undo: the run page, the preview and confirm, progress, redo, refusals."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from approvals.models import Change, Event
from demo.models import Ticket
from tests.factories import make_tickets
from undo.models import Undo

from .conftest import apply_run, human_edit, propose_run, undo

S = Change.Status


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def tickets(db):
    return make_tickets(3)


@pytest.fixture
def run(run_agent, workflow, tickets):
    return apply_run(run_agent, workflow, "r-118", [(t, {"status": "resolved", "tags": "billing"}) for t in tickets])[0]


# The run page --------------------------------------------------------------------------


def test_the_run_page_shows_counts_changes_and_the_undo_button_to_owners(support, run):
    page = client_for(support).get(f"/runs/{run.pk}/").content.decode()
    assert '<span class="badge applied">applied</span></a> 3' in page
    assert f'href="/runs/{run.pk}/undo"' in page and "Undo this run" in page
    assert "Rerun failed" in page and "disabled" in page  # shown, never a fake button
    assert page.count('name="change"') == 3  # each applied change can be selected
    assert "/undo-agent/?agent=triage-bot&amp;version=2.3&amp;since=" in page  # widen to the incident


def test_the_run_page_counts_in_plain_words_each_linking_to_its_list(support, run, tickets):
    Change.objects.filter(pk=run.changes.order_by("id").first().pk).update(status=S.CONFLICT)
    page = client_for(support).get(f"/runs/{run.pk}/").content.decode()
    assert '<a href="?show=failed"><span class="badge conflict">conflict (record changed)</span></a> 1' in page
    assert '<a href="?show=applied"><span class="badge applied">applied</span></a> 2' in page
    waiting = client_for(support).get(f"/runs/{run.pk}/?show=waiting").content.decode()
    assert waiting.count('class="card change"') == 1  # a conflict waits for a reviewer again


def test_the_run_page_explains_who_may_undo_to_a_reviewer(reviewer, run):
    page = client_for(reviewer).get(f"/runs/{run.pk}/").content.decode()
    assert "Undo this run" not in page
    assert "Only the owners of these records (support) and admins may undo this run." in page


def test_the_run_page_filters_changes(support, run, run_agent, workflow):
    Change.objects.filter(pk=run.changes.order_by("id").first().pk).update(status=S.FAILED, last_error="gone")
    client = client_for(support)
    failed = client.get(f"/runs/{run.pk}/?show=failed").content.decode()
    assert failed.count('class="card change"') == 1 and "gone" in failed
    assert client.get(f"/runs/{run.pk}/?show=applied").content.decode().count('class="card change"') == 2
    assert client.get(f"/runs/{run.pk}/?show=nonsense").status_code == 200


# Preview, then one click --------------------------------------------------------------------


def test_the_preview_shows_what_goes_back_and_the_conflicts_and_writes_nothing(support, run, tickets):
    human_edit(support, tickets[0], status="closed")
    rows = Ticket.history.count()

    response = client_for(support).get(f"/runs/{run.pk}/undo")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>3</strong> changes" in page and "<strong>1</strong> in conflict" in page
    assert "status: resolved → open" in page and "tags: billing → (empty)" in page
    assert "since then sam set it to closed" in page
    # Per record in conflict: keep (the default), force or skip; any record going back can be skipped.
    key = f"ticket:{tickets[0].pk}"
    assert f'name="on-{key}" value="keep" checked' in page
    assert f'name="on-{key}" value="force"' in page
    # Its change stays whole (its tags stay too), so nothing of it would go back: no skip to offer.
    assert f'name="on-{key}" value="skip"' not in page and "tags stays at billing with change #" in page
    assert f'name="skip" value="ticket:{tickets[1].pk}"' in page
    assert Ticket.history.count() == rows and Undo.objects.count() == 0


def test_one_click_undoes_the_run_and_the_run_page_shows_it_done(support, run, tickets):
    client = client_for(support)
    response = client.post(f"/runs/{run.pk}/undo")

    assert response.status_code == 302 and response.url == f"/runs/{run.pk}/"
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}
    page = client.get(response.url).content.decode()
    assert '<span class="badge undone">undone</span></a> 3' in page
    assert 'class="badge done"' in page and "3 changes undone" in page


def test_forcing_from_the_form(support, run, tickets):
    human_edit(support, tickets[0], status="closed")
    # A mark that is not a number is ignored (then nothing bounds the force), never a 500.
    response = client_for(support).post(
        f"/runs/{run.pk}/undo", {f"on-ticket:{tickets[0].pk}": "force", "seen-ticket": "²"}
    )
    assert response.status_code == 302
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}


def test_a_force_never_overwrites_an_edit_made_after_the_preview(support, run, tickets):
    human_edit(support, tickets[0], status="closed")
    client = client_for(support)
    page = client.get(f"/runs/{run.pk}/undo").content.decode()
    seen = re.search(r'name="seen-ticket" value="(\d+)"', page).group(1)
    human_edit(support, tickets[0], status="waiting on customer")  # while the owner reads the preview

    client.post(f"/runs/{run.pk}/undo", {f"on-ticket:{tickets[0].pk}": "force", "seen-ticket": seen})

    tickets[0].refresh_from_db()
    assert (tickets[0].status, tickets[0].tags) == ("waiting on customer", "billing")
    done = Undo.objects.get()
    assert (done.forced_count, done.conflicts_left) == (0, 1)
    assert "Not forced: it was changed again after your preview" in done.conflicts[0]["lines"][0]


def test_a_run_undo_undoes_what_its_preview_showed_not_what_came_after(support, run, tickets, run_agent, workflow):
    client = client_for(support)
    page = client.get(f"/runs/{run.pk}/undo").content.decode()
    seen = dict(re.findall(r'name="seen-(\w+)" value="(\d+)"', page))
    assert set(seen) == {"ticket"}
    # While the owner reads the preview, the run goes on: a ticket and a customer it had not touched.
    (later,) = make_tickets(1)
    apply_run(run_agent, workflow, "r-118", [(later, {"status": "resolved"}), (later.customer, {"tier": "vip"})])

    client.post(f"/runs/{run.pk}/undo", {f"seen-{t}": v for t, v in seen.items()})

    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", flat=True)) == {"open"}
    later.refresh_from_db()
    later.customer.refresh_from_db()
    assert (later.status, later.customer.tier) == ("resolved", "vip")  # shown to nobody, so not undone
    assert Undo.objects.get().records_reverted == 3


def test_skipping_from_the_form(support, run, tickets):
    human_edit(support, tickets[0], status="closed")
    client = client_for(support)
    response = client.post(
        f"/runs/{run.pk}/undo",
        {f"on-ticket:{tickets[0].pk}": "skip", "skip": [f"ticket:{tickets[2].pk}", "nonsense", "ticket:x"]},
    )
    assert response.url == Undo.objects.get().get_absolute_url()  # what stayed is listed there

    states = list(Ticket.objects.order_by("id").values_list("status", "tags"))
    assert states == [("closed", "billing"), ("open", ""), ("resolved", "billing")]
    done = Undo.objects.get()
    assert done.skipped == [f"ticket:{tickets[0].pk}", f"ticket:{tickets[2].pk}"]
    page = client.get(done.get_absolute_url()).content.decode()
    assert "2 skipped" in page and "Skipped, as asked: left exactly as it is." in page
    assert "not set back: tags: billing → (empty)" in page


def test_a_selection_from_the_run_page(support, run, tickets):
    first, _, third = run.changes.order_by("id")
    client = client_for(support)
    preview = client.get(f"/runs/{run.pk}/undo", {"change": [first.pk, third.pk]}).content.decode()
    assert "Undo 2 changes of run r-118" in preview
    assert f'<input type="hidden" name="change" value="{first.pk}">' in preview

    client.post(f"/runs/{run.pk}/undo", {"change": [first.pk, third.pk]})

    assert list(Ticket.objects.order_by("id").values_list("status", flat=True)) == ["open", "resolved", "open"]


def test_a_selection_that_is_not_change_numbers_is_refused_not_widened_to_the_run(support, run):
    client = client_for(support)
    for bad in ("abc", "99999999999999999999", "²", "1²", "１", "-1"):
        response = client.get(f"/runs/{run.pk}/undo", {"change": bad})
        assert response.status_code == 400
        assert "The selection is not valid (change numbers only)" in response.content.decode()
        assert client.post(f"/runs/{run.pk}/undo", {"change": bad}).status_code == 400
    assert Undo.objects.count() == 0


def _waiting_change(run, ticket) -> Change:
    return propose_run(run.agent, run.workflow, run.external_id, [(ticket, {"tags": "spam"})])[1][0]


def test_undoing_a_run_offers_to_reject_its_changes_still_waiting(support, run, tickets):
    waiting = _waiting_change(run, tickets[0])
    client = client_for(support)
    page = client.get(f"/runs/{run.pk}/undo").content.decode()
    assert "1 change of this run is still waiting for review." in page
    assert '<input type="checkbox" name="reject_waiting" checked>' in page

    response = client.post(f"/runs/{run.pk}/undo", {"reject_waiting": "on", "waiting": [waiting.pk]}, follow=True)

    waiting.refresh_from_db()
    assert waiting.status == S.REJECTED
    assert waiting.reject_reason == f"Its run r-118 was undone by sam (undo #{Undo.objects.get().pk})."
    assert "Also rejected 1 change of the run still waiting for review." in response.content.decode()
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}


def test_only_the_waiting_changes_the_preview_listed_are_rejected(support, run, tickets):
    listed = _waiting_change(run, tickets[0])
    client = client_for(support)
    assert f'name="waiting" value="{listed.pk}"' in client.get(f"/runs/{run.pk}/undo").content.decode()
    arrived = _waiting_change(run, tickets[1])  # after the preview: nobody chose to reject it

    client.post(f"/runs/{run.pk}/undo", {"reject_waiting": "on", "waiting": [listed.pk]})

    listed.refresh_from_db()
    arrived.refresh_from_db()
    assert (listed.status, arrived.status) == (S.REJECTED, S.PENDING_REVIEW)


def test_waiting_changes_stay_when_the_owner_unticks_it(support, run, tickets):
    waiting = _waiting_change(run, tickets[0])
    client_for(support).post(f"/runs/{run.pk}/undo")
    waiting.refresh_from_db()
    assert waiting.status == S.PENDING_REVIEW


def test_undo_this_change_from_its_page(support, run, tickets):
    change = run.changes.order_by("id").first()
    page = client_for(support).get(f"/changes/{change.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/undo?change={change.pk}"' in page
    # An applied change does not wait: the page says how it was routed, not why it waits.
    assert "How the rules routed it:" in page and "Why it waits" not in page and "· waiting" not in page


def test_undoing_again_moves_no_change(support, run):
    client = client_for(support)
    client.post(f"/runs/{run.pk}/undo")
    events = Event.objects.exclude(details__has_key="undo").count()
    page = client.get(f"/runs/{run.pk}/undo").content.decode()
    assert "Nothing left to undo" in page and 'type="submit" class="reject"' not in page
    client.post(f"/runs/{run.pk}/undo")  # a second click, or a stale tab
    assert Event.objects.exclude(details__has_key="undo").count() == events


def test_undoing_a_run_again_after_a_later_run_lists_no_conflict_and_forces_nothing(
    support, run, tickets, run_agent, workflow
):
    client = client_for(support)
    client.post(f"/runs/{run.pk}/undo")
    later, _ = apply_run(run_agent, workflow, "r-119", [(t, {"status": "closed", "tags": "refund"}) for t in tickets])
    rows = Ticket.history.count()

    page = client.get(f"/runs/{run.pk}/undo").content.decode()

    assert "<strong>0</strong> in conflict" in page and "<li>3 already back" in page
    assert "Nothing left to undo: these changes were undone already" in page
    assert 'value="force"' not in page

    client.post(f"/runs/{run.pk}/undo", {f"on-ticket:{tickets[0].pk}": "force"})  # a stale or crafted form

    assert set(Ticket.objects.values_list("status", "tags")) == {("closed", "refund")}
    assert Ticket.history.count() == rows
    assert Undo.objects.order_by("id").last().change_ids_done == []
    assert set(later.changes.values_list("status", flat=True)) == {S.APPLIED}


def test_the_preview_of_undoing_a_create_says_the_record_is_removed(support, run_agent, workflow, tickets):
    created, _ = apply_run(
        run_agent,
        workflow,
        "r-120",
        [("ticket", "create", [], {"customer": tickets[0].customer_id, "subject": "Refund 12"})],
    )

    page = client_for(support).get(f"/runs/{created.pk}/undo").content.decode()

    assert "<strong>1</strong> created record is removed (soft-deleted: it can be restored)" in page
    assert "</strong> goes back (" not in page and "</strong> go back (" not in page


def test_the_incident_scope_page(support, run_agent, run, tickets):
    since = (timezone.localtime() - timezone.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    client = client_for(support)
    form = {"agent": run_agent.name, "version": run_agent.version, "since": since}

    preview = client.get("/undo-agent/", form)
    assert preview.status_code == 200
    assert "everything triage-bot v2.3 did between" in preview.content.decode()

    response = client.post("/undo-agent/", form)
    assert response.status_code == 302
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}


def test_the_incident_scope_undoes_the_window_it_previewed(support, run_agent, run, tickets, workflow):
    since = (timezone.localtime() - timezone.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    client = client_for(support)
    form = {"agent": run_agent.name, "version": run_agent.version, "since": since}  # until: now
    page = client.get("/undo-agent/", form).content.decode()
    until = re.search(r'name="until" value="([^"]+)"', page).group(1)
    assert until  # the preview's own "now", to the microsecond
    # Applied after the preview: not in what the owner saw, so not undone.
    (later,) = make_tickets(1)
    apply_run(run_agent, workflow, "r-119", [(later, {"status": "resolved"})])

    client.post(
        "/undo-agent/", {**form, "since": re.search(r'name="since" value="([^"]+)"', page).group(1), "until": until}
    )

    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", flat=True)) == {"open"}
    later.refresh_from_db()
    assert later.status == "resolved"


def test_the_incident_scope_narrows_to_the_records_the_owner_owns(support, run_agent, workflow, tickets):
    from tests.factories import make_invoice

    invoice = make_invoice(amount="100.00")
    apply_run(run_agent, workflow, "r-mixed", [(tickets[0], {"status": "closed"}), (invoice, {"status": "void"})])
    since = (timezone.localtime() - timezone.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    client = client_for(support)
    form = {"agent": run_agent.name, "version": run_agent.version, "since": since}

    mixed = client.get("/undo-agent/", form)
    assert mixed.status_code == 403  # support does not own invoices
    assert "To undo only the records you own, choose them under Records." in mixed.content.decode()
    user = User.objects.create_user("nora")  # owns nothing: no hint to narrow
    user.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    assert "choose them under Records" not in client_for(user).get("/undo-agent/", form).content.decode()

    narrowed = client.get("/undo-agent/", {**form, "record_type": "ticket"}).content.decode()
    assert "did to tickets between" in narrowed
    page_until = re.search(r'name="until" value="([^"]+)"', narrowed).group(1)
    client.post("/undo-agent/", {**form, "record_type": "ticket", "since": since, "until": page_until})

    tickets[0].refresh_from_db()
    invoice.refresh_from_db()
    assert (tickets[0].status, invoice.status) == ("open", "void")
    assert Undo.objects.get().scope_key.endswith("|type:ticket")


def test_the_incident_scope_form_shows_its_errors(support, run_agent, db):
    response = client_for(support).get("/undo-agent/", {"agent": "nobody", "since": "yesterday"})
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()


def test_the_incident_scope_says_a_refusal_once(support, run_agent, db):
    since = (timezone.localtime() - timezone.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = client_for(support).get("/undo-agent/", {"agent": run_agent.name, "since": since}).content.decode()
    assert page.count("applied no change between") == 1


# Refusals ------------------------------------------------------------------------------


def test_a_reviewer_who_owns_nothing_gets_a_clear_403(reviewer, run):
    client = client_for(reviewer)
    for response in (client.get(f"/runs/{run.pk}/undo"), client.post(f"/runs/{run.pk}/undo")):
        assert response.status_code == 403
        assert "Only the owners of these records (support) and admins may undo" in response.content.decode()
    assert Undo.objects.count() == 0


def test_undoing_a_change_never_applied_is_explained(support, run_agent, workflow, tickets):
    _, (change,) = apply_run(run_agent, workflow, "r-2", [(tickets[0], {"status": "closed"})])
    Change.objects.filter(pk=change.pk).update(status=S.PENDING_REVIEW)
    response = client_for(support).get(f"/runs/{change.run_id}/undo", {"change": change.pk})
    assert response.status_code == 409
    assert "it was never applied: it is waiting for review. Reject it instead" in response.content.decode()


def test_undoing_a_run_still_applying_says_to_wait_or_pause(support, run):
    Change.objects.filter(pk=run.changes.order_by("id").first().pk).update(status=S.QUEUED)
    response = client_for(support).post(f"/runs/{run.pk}/undo")
    assert response.status_code == 409
    text = response.content.decode()
    assert "is still applying" in text and "pause the workflow (ticket-triage) first" in text
    assert Undo.objects.count() == 0


def test_wrong_method_is_405(support, run):
    assert client_for(support).put(f"/runs/{run.pk}/undo").status_code == 405


# Progress, the undo's page, redo ------------------------------------------------------------


def test_the_progress_partial_polls_until_done(support, run, settings):
    settings.UNDO_INLINE_MAX_RECORDS = 0  # large: left for a worker
    client = client_for(support)
    client.post(f"/runs/{run.pk}/undo")
    made = Undo.objects.get()
    assert made.status == Undo.Status.QUEUED

    running = client.get(f"/undos/{made.pk}/progress", HTTP_HX_REQUEST="true")
    assert running.status_code == 200
    assert f'hx-get="/undos/{made.pk}/progress"' in running.content.decode()
    assert "waiting for a worker" in client.get(f"/runs/{run.pk}/").content.decode()

    from undo.services import execute_undo

    execute_undo(undo_id=made.pk)
    done = client.get(f"/undos/{made.pk}/progress", HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    assert "hx-get" not in done.content.decode() and "3 set back" in done.content.decode()
    assert done["HX-Refresh"] == "true"  # the counts and statuses around the bar changed too
    assert "HX-Refresh" not in running


def test_the_progress_endpoint_answers_403_when_logged_out(support, run):
    made = undo(support, run_id=run.pk)
    response = Client().get(f"/undos/{made.pk}/progress", HTTP_HX_REQUEST="true")
    assert response.status_code == 403


def test_outsiders_do_not_see_undos(outsider, support, run):
    made = undo(support, run_id=run.pk)
    client = client_for(outsider)
    assert client.get(f"/undos/{made.pk}/").status_code == 404
    assert client.get(f"/undos/{made.pk}/progress").status_code == 404
    assert client.post(f"/runs/{run.pk}/undo").status_code == 403


def test_the_undo_page_lists_conflicts_and_offers_redo(support, run, tickets):
    human_edit(support, tickets[0], status="closed")
    made = undo(support, run_id=run.pk)
    page = client_for(support).get(f"/undos/{made.pk}/").content.decode()
    assert "<h2>Left as they are</h2>" in page and "sam set it to closed" in page
    assert f'href="/undos/{made.pk}/redo"' in page


def test_redo_from_the_browser(support, run, tickets):
    made = undo(support, run_id=run.pk)
    client = client_for(support)
    preview = client.get(f"/undos/{made.pk}/redo").content.decode()
    assert "status: open → resolved" in preview

    response = client.post(f"/undos/{made.pk}/redo")

    redone = Undo.objects.get(target=made)
    assert response.status_code == 302 and response.url == f"/undos/{redone.pk}/"
    assert set(Ticket.objects.values_list("status", flat=True)) == {"resolved"}
    assert set(Change.objects.values_list("status", flat=True)) == {S.APPLIED}
    assert str(redone) == f"redo #{redone.pk}: what undo #{made.pk} took back (the test scope)"
    page = client.get(f"/records/ticket/{tickets[0].pk}/").content.decode()
    assert f'">redo #{redone.pk}</a>' in page and f"redo #{redone.pk} by sam" in page

    # Undoing the redo takes the changes back again, and says so, naming the first scope once.
    again = client.post(f"/undos/{redone.pk}/redo")
    third = Undo.objects.get(target=redone)
    assert again.url == f"/undos/{third.pk}/"
    assert str(third) == f"redo #{third.pk}: what redo #{redone.pk} put back (the test scope)"
    assert set(Change.objects.values_list("status", flat=True)) == {S.UNDONE}


def test_a_reviewer_may_not_redo(reviewer, support, run):
    made = undo(support, run_id=run.pk)
    assert client_for(reviewer).post(f"/undos/{made.pk}/redo").status_code == 403
    assert Undo.objects.count() == 1


def test_the_undo_list(support, run):
    made = undo(support, run_id=run.pk, description="run r-118")
    page = client_for(support).get("/undos/").content.decode()
    assert f'href="/undos/{made.pk}/"' in page and "run r-118" in page


def test_a_long_preview_shows_a_first_screen_and_folds_the_rest(support, run_agent, workflow):
    # Found by trying it: the preview of a 249-record undo was 5,201 px, every record listed open.
    many = make_tickets(45)
    big = apply_run(run_agent, workflow, "r-long", [(t, {"status": "resolved"}) for t in many])[0]
    for t in many[:14]:
        human_edit(support, t, status="closed")
    page = client_for(support).get(f"/runs/{big.pk}/undo").content.decode()
    assert page.count('class="card conflict"') == 14
    assert "Show the other 4 records with something that stays as it is" in page
    assert "Show the other 11 records that go back" in page
    # What is folded is still in the form: every record can still be skipped or forced.
    assert page.count('name="skip"') == 31 and page.count('value="force"') == 14
    head, folded = page.split("Show the other 11 records that go back")
    assert f'value="ticket:{many[-1].pk}"' in folded
