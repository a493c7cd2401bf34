"""Undoing from approvals' pages (approvals.undoing.services): one call per action, and who may
undo is asked once, of what the undo reaches."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from approvals.undoing import services
from demo.models import Invoice, Ticket
from tests.factories import make_invoice, make_tickets
from undo.models import Undo

from .conftest import apply_run


@pytest.fixture
def tickets(db):
    return make_tickets(2)


def test_the_undo_asks_who_may_of_what_the_preview_showed(support, run_agent, workflow, tickets):
    run, _ = apply_run(run_agent, workflow, "r-1", [(t, {"status": "resolved"}) for t in tickets])
    _, preview = services.preview_run_undo(run=run, change_ids=[], user=support)
    assert preview.seen.keys() == {"ticket"}
    # After the preview, the run also changes an invoice, which support does not own.
    invoice = make_invoice()
    apply_run(run_agent, workflow, "r-1", [(invoice, {"status": "void"})])

    # Only what the preview showed is undone, so only that is asked about.
    made = services.undo_run(run=run, change_ids=[], user=support, seen=preview.seen)[0]

    assert made.status == Undo.Status.DONE
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", flat=True)) == {"open"}
    assert Invoice.objects.get(pk=invoice.pk).status == "void"


def test_the_preview_asks_who_may_of_everything_the_run_wrote(support, run_agent, workflow, tickets):
    run, _ = apply_run(
        run_agent, workflow, "r-1", [(tickets[0], {"status": "resolved"}), (make_invoice(), {"status": "void"})]
    )
    with pytest.raises(services.NotAllowed, match=r"Only the owners of these records \(finance and support\)") as e:
        services.preview_run_undo(run=run, change_ids=[], user=support)
    assert e.value.owned == ["ticket"]
    with pytest.raises(services.NotAllowed):
        services.undo_run(run=run, change_ids=[], user=support)
    assert not Undo.objects.exists()


def test_an_agents_window_names_the_record_types_the_person_owns(support, finance, run_agent, workflow, tickets):
    apply_run(run_agent, workflow, "r-1", [(tickets[0], {"status": "closed"}), (make_invoice(), {"status": "void"})])
    window = {"name": run_agent.name, "version": "", "since": timezone.now() - dt.timedelta(hours=1)}
    window["until"] = timezone.now()
    for user, owned in ((support, ["ticket"]), (finance, ["invoice"])):
        with pytest.raises(services.NotAllowed) as refused:
            services.preview_agent_undo(user=user, **window)
        assert refused.value.owned == owned
    target, preview = services.preview_agent_undo(user=support, record_type="ticket", **window)
    assert preview.record_types == ["ticket"]
    assert services.undo_agent(user=support, record_type="ticket", **window).status == Undo.Status.DONE
