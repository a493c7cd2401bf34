"""A large undo runs on a real Celery worker process while the run page follows its progress."""

from __future__ import annotations

import pytest
from django.test import Client

from approvals.models import Change
from demo.models import Ticket
from tests.conftest import ROOT, wait_until
from tests.factories import make_agent, make_tickets
from tests.undo.conftest import apply_run
from undo.models import Undo


@pytest.mark.e2e
def test_a_large_undo_runs_on_a_worker_and_the_page_follows_it(celery_worker_process, settings, support, workflow):
    run_agent = make_agent(workflow, name="triage-bot", version="2.3")[0]
    tickets = make_tickets(40)
    run, _ = apply_run(run_agent, workflow, "r-big", [(t, {"status": "resolved", "tags": "billing"}) for t in tickets])
    settings.UNDO_INLINE_MAX_RECORDS = 10  # 40 records: too many for the request, so a worker runs it
    client = Client()
    client.force_login(support)

    response = client.post(f"/runs/{run.pk}/undo")

    assert response.status_code == 302
    made = Undo.objects.get()
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'hx-get="/undos/{made.pk}/progress"' in page or 'class="badge done"' in page

    def finished():
        """the progress endpoint to say the undo is done (HTTP 286 stops htmx polling)"""
        return client.get(f"/undos/{made.pk}/progress", HTTP_HX_REQUEST="true").status_code == 286

    wait_until(finished, timeout=30)
    made.refresh_from_db()
    assert made.status == Undo.Status.DONE, made.error
    assert made.records_reverted == 40
    assert set(Ticket.objects.values_list("status", "tags")) == {("open", "")}
    assert set(Change.objects.values_list("status", flat=True)) == {Change.Status.UNDONE}
    rows = Ticket.history.filter(cs_undo_id=made.pk)
    assert rows.count() == 40 and {r.history_user_id for r in rows} == {support.pk}
    log = (ROOT / "var" / "test-worker.log").read_text()
    assert f"{{'undo': {made.pk}, 'status': 'done', 'records': 40}}" in log  # the worker ran it, not the request
