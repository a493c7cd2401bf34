"""The agent API: proposing changes, idempotency and clear errors that store nothing."""

from __future__ import annotations

import json

import pytest

from approvals.models import Change, Event, Run
from tests.factories import make_agent, make_tickets, make_workflow, ticket_change


def one(ticket, **overrides):
    return {"workflow": "ticket-triage", "run": "r-118", **ticket_change(ticket, **overrides)}


def assert_error(response, status: int, loc_end=None):
    assert response.status_code == status, response.content
    if loc_end is not None:
        locs = [tuple(d["loc"]) for d in response.json()["detail"]]
        assert any(loc[-len(loc_end) :] == tuple(loc_end) for loc in locs), locs
    assert Change.objects.count() == 0


def test_it_stores_a_low_risk_change_as_queued(api, ticket, agent):
    response = api.post("/api/v1/changes", one(ticket))
    assert response.status_code == 201, response.content
    body = response.json()
    change = Change.objects.get()
    assert body["id"] == change.pk
    assert body["status"] == "queued"
    assert body["explanation"] == "Auto-approved: risk 0.1 < 0.5 (rule 'below the review threshold')."
    assert change.run.external_id == "r-118" and change.run.agent == agent
    assert change.expected == {str(ticket.pk): {"tags": ""}}
    assert [e.to_status for e in Event.objects.filter(change=change)] == ["auto_approved", "queued"]


def test_it_holds_a_risky_change_for_review(api, ticket):
    response = api.post("/api/v1/changes", one(ticket, risk=0.8))
    assert response.status_code == 201
    assert response.json()["status"] == "pending_review"
    assert response.json()["review_group"] == "support"
    assert response.json()["explanation"] == "Held for support review: no rule matched, so a person decides."


def test_it_always_holds_irreversible_record_types(api, ticket):
    from tests.factories import make_invoice

    invoice = make_invoice()
    body = {
        "workflow": "ticket-triage",
        "run": "r-1",
        "operation_id": "refund-1",
        "record_type": "refund",
        "operation": "create",
        "values": {"invoice": invoice.pk, "amount": "10.00"},
        "risk": 0.0,
        "confidence": 1.0,
    }
    response = api.post("/api/v1/changes", body)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending_review"


def test_the_same_operation_id_and_body_returns_the_stored_change(api, ticket):
    first = api.post("/api/v1/changes", one(ticket))
    again = api.post("/api/v1/changes", one(ticket))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Change.objects.count() == 1


def test_the_same_operation_id_with_another_body_is_409(api, ticket):
    api.post("/api/v1/changes", one(ticket))
    response = api.post("/api/v1/changes", one(ticket, values={"tags": "refund"}))
    assert response.status_code == 409
    assert "already used for a different change" in response.json()["detail"][0]["msg"]
    assert Change.objects.count() == 1


def test_malformed_json_is_400(api):
    assert_error(api.post("/api/v1/changes", "{not json"), 400)


def test_unknown_record_type_is_422(api, ticket):
    assert_error(api.post("/api/v1/changes", one(ticket, record_type="spaceship")), 422, ["record_type"])


def test_unknown_field_is_422(api, ticket):
    response = api.post("/api/v1/changes", one(ticket, values={"priority": "high"}))
    assert_error(response, 422, ["values", "priority"])
    assert "may not change 'priority'" in response.json()["detail"][0]["msg"]


def test_unknown_record_id_is_422(api, ticket):
    body = one(ticket, records=[{"id": 999999, "expected": {"tags": ""}}])
    assert_error(api.post("/api/v1/changes", body), 422, ["records", 0, "id"])


@pytest.mark.parametrize(
    "values, field",
    [({"tags": 5}, "tags"), ({"status": "exploded"}, "status"), ({"status": None}, "status")],
)
def test_wrong_value_type_is_422(api, ticket, values, field):
    body = one(ticket, values=values, records=[{"id": ticket.pk, "expected": {field: "open"}}])
    assert_error(api.post("/api/v1/changes", body), 422, ["values", field])


def test_wrong_risk_type_is_422(api, ticket):
    assert_error(api.post("/api/v1/changes", one(ticket, risk="high")), 422, ["risk"])
    assert_error(api.post("/api/v1/changes", one(ticket, risk=1.5)), 422, ["risk"])


def test_missing_expected_values_is_422(api, ticket):
    body = one(ticket, records=[{"id": ticket.pk, "expected": {}}])
    response = api.post("/api/v1/changes", body)
    assert_error(response, 422, ["records", 0, "expected", "tags"])


def test_a_body_too_large_is_413(api, ticket, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert_error(api.post("/api/v1/changes", one(ticket, reasoning="x" * 5000)), 413)


def test_a_missing_token_is_401(client, ticket):
    response = client.post("/api/v1/changes", json.dumps(one(ticket)), content_type="application/json")
    assert_error(response, 401)


def test_a_wrong_token_is_401(ticket, workflow):
    from tests.conftest import ApiClient

    assert_error(ApiClient("cs_not-a-token").post("/api/v1/changes", one(ticket)), 401)


def test_an_agent_outside_the_workflow_is_403(api, ticket):
    make_workflow("refund-bot")
    assert_error(api.post("/api/v1/changes", one(ticket, workflow="refund-bot")), 403, ["workflow"])


def test_an_agent_outside_the_record_type_is_403(ticket, workflow):
    from tests.conftest import ApiClient

    _, token = make_agent(workflow, name="refund-bot", record_types=["refund"])
    assert_error(ApiClient(token).post("/api/v1/changes", one(ticket)), 403, ["record_type"])


def test_a_batch_of_1000_is_stored_in_one_request(api, workflow):
    tickets = make_tickets(1000)
    changes = [ticket_change(t, operation_id=f"op-{t.pk}") for t in tickets]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-big", "changes": changes})
    assert response.status_code == 201, response.content[:500]
    assert response.json()["run"]["counts"] == {"queued": 1000}
    assert Change.objects.count() == 1000
    # Sent again: nothing new.
    again = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-big", "changes": changes})
    assert again.status_code == 200
    assert Change.objects.count() == 1000


def test_one_bad_change_in_a_batch_stores_nothing(api, workflow):
    tickets = make_tickets(3)
    changes = [ticket_change(t, operation_id=f"op-{t.pk}") for t in tickets]
    changes[2]["values"] = {"tags": 7}
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": changes})
    assert_error(response, 422, ["changes", 2, "values", "tags"])
    assert Run.objects.count() == 0


def test_a_batch_over_1000_is_refused(api, ticket):
    changes = [ticket_change(ticket, operation_id=f"op-{i}") for i in range(1001)]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": changes})
    assert_error(response, 422, ["changes"])


def test_it_reads_a_change_and_a_run(api, ticket):
    posted = api.post("/api/v1/changes", one(ticket, risk=0.9)).json()
    change = api.get(f"/api/v1/changes/{posted['id']}")
    assert change.status_code == 200
    assert change.json()["status"] == "pending_review"
    assert change.json()["links"]["page"].endswith(f"/changes/{posted['id']}/")
    run = api.get(posted["links"]["run"].replace("http://testserver", ""))
    assert run.json()["counts"] == {"pending_review": 1}
    assert run.json()["total"] == 1


def test_another_agents_change_is_404(api, ticket, workflow):
    from tests.conftest import ApiClient

    posted = api.post("/api/v1/changes", one(ticket)).json()
    _, token = make_agent(workflow, name="other-bot")
    assert ApiClient(token).get(f"/api/v1/changes/{posted['id']}").status_code == 404


def test_the_openapi_schema_declares_every_error(client):
    schema = client.get("/api/v1/openapi.json").json()
    responses = schema["paths"]["/api/v1/changes"]["post"]["responses"]
    assert {"201", "200", "400", "401", "403", "409", "413", "422"} <= set(responses)
    assert client.get("/api/v1/docs").status_code == 200


def test_an_update_to_a_soft_deleted_record_is_422(api, ticket):
    from django.utils import timezone

    ticket.deleted_at = timezone.now()
    ticket.save()
    response = api.post("/api/v1/changes", one(ticket))
    assert_error(response, 422, ["records", 0, "id"])
    assert f"Ticket #{ticket.pk} was deleted" in response.json()["detail"][0]["msg"]


def test_deleting_a_soft_deleted_record_again_is_422(api, ticket):
    from django.utils import timezone

    ticket.deleted_at = timezone.now()
    ticket.save()
    body = one(ticket, operation="soft_delete", values={}, records=[{"id": ticket.pk, "expected": {}}])
    response = api.post("/api/v1/changes", body)
    assert_error(response, 422, ["records", 0, "id"])
    assert "already deleted" in response.json()["detail"][0]["msg"]


def test_a_deleted_record_in_a_batch_is_named_by_its_place(api, workflow):
    from django.utils import timezone

    tickets = make_tickets(3)
    tickets[1].deleted_at = timezone.now()
    tickets[1].save()
    changes = [ticket_change(t, operation_id=f"op-{t.pk}") for t in tickets]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r-1", "changes": changes})
    assert_error(response, 422, ["changes", 1, "records", 0, "id"])


def creates(customers, n: int) -> list[dict]:
    return [
        {
            "operation_id": f"op-{i}",
            "record_type": "ticket",
            "operation": "create",
            "values": {"customer": customers[i % len(customers)].pk, "subject": f"Ticket {i}"},
            "risk": 0.9,
            "confidence": 0.5,
        }
        for i in range(n)
    ]


def test_references_in_a_batch_are_checked_in_one_query_not_one_per_change(
    api, workflow, django_assert_max_num_queries
):
    from tests.factories import make_customer

    customers = [make_customer(name=f"Customer {i}") for i in range(5)]
    body = {"workflow": "ticket-triage", "run": "r-1", "changes": creates(customers, 200)}
    with django_assert_max_num_queries(40):
        response = api.post("/api/v1/changes/batch", body)
    assert response.status_code == 201, response.content[:300]


def test_a_missing_reference_in_a_batch_is_named_by_its_place(api, workflow):
    from tests.factories import make_customer

    body = {"workflow": "ticket-triage", "run": "r-1", "changes": creates([make_customer()], 5)}
    body["changes"][3]["values"]["customer"] = 999999
    response = api.post("/api/v1/changes/batch", body)
    assert_error(response, 422, ["changes", 3, "values", "customer"])
    assert "no customer has id 999999" in response.json()["detail"][0]["msg"]
