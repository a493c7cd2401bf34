"""The agent API's errors: one shape for every 4xx, plain words, range-checked integers, JSON only."""

from __future__ import annotations

import json

import pytest

from approvals.models import Change
from tests.factories import make_customer, ticket_change


def one(ticket, **overrides):
    return {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket, **overrides)}


def assert_shape(response, status: int) -> list[dict]:
    """The one error shape: {"detail": [{"loc": [...], "msg": "..."}]}, as JSON, nothing stored."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"detail"}
    assert body["detail"] and all(set(item) == {"loc", "msg"} for item in body["detail"]), body
    assert all(isinstance(item["loc"], list) and isinstance(item["msg"], str) for item in body["detail"])
    assert Change.objects.count() == 0
    return body["detail"]


BEYOND_64_BITS = [2**63, 2**64, 2**70, -(2**63) - 1, -1, 0]


@pytest.mark.parametrize("record_id", BEYOND_64_BITS)
def test_a_record_id_out_of_range_is_422(api, ticket, record_id):
    body = one(ticket, records=[{"id": record_id, "expected": {"tags": ""}}])
    [error] = assert_shape(api.post("/api/v1/changes", body), 422)
    assert error["loc"] == ["body", "records", 0, "id"]


def test_an_integer_of_thousands_of_digits_is_a_range_error_not_python_internals(api, ticket):
    text = json.dumps(one(ticket)).replace(f'"id": {ticket.pk}', '"id": ' + "9" * 5000)
    [error] = assert_shape(api.post("/api/v1/changes", text), 422)
    assert error["loc"] == ["body", "records", 0, "id"]
    assert "at most 9223372036854775807" in error["msg"]


@pytest.mark.parametrize("customer_id", [2**63, 2**70, -(2**63) - 1])
def test_a_foreign_key_out_of_range_is_422(api, ticket, customer_id):
    body = one(ticket, operation="create", records=[], values={"customer": customer_id, "subject": "Hello"})
    [error] = assert_shape(api.post("/api/v1/changes", body), 422)
    assert error["loc"] == ["body", "values", "customer"]


@pytest.mark.parametrize("path", ["/api/v1/changes/{n}", "/api/v1/runs/{n}"])
@pytest.mark.parametrize("n", [2**63, 2**70, "abc"])
def test_a_path_id_out_of_range_is_422(api, path, n):
    [error] = assert_shape(api.get(path.format(n=n)), 422)
    assert error["loc"][0] == "path"


def test_nan_is_said_to_be_not_a_number(api, ticket):
    text = json.dumps(one(ticket, risk=float("nan")))
    [error] = assert_shape(api.post("/api/v1/changes", text), 422)
    assert error["loc"] == ["body", "risk"]
    assert "not a number" in error["msg"].lower()


def test_an_empty_body_is_400(api):
    [error] = assert_shape(api.post("/api/v1/changes", ""), 400)
    assert "empty" in error["msg"]


def test_malformed_json_says_where(api):
    [error] = assert_shape(api.post("/api/v1/changes", '{"workflow": '), 400)
    assert "line 1" in error["msg"]


def test_locs_never_name_the_parameter(api, ticket):
    for body in ({}, one(ticket, risk="high"), {"workflow": "ticket-triage", "run": "r", "changes": [5]}):
        path = "/api/v1/changes/batch" if "changes" in body else "/api/v1/changes"
        for error in assert_shape(api.post(path, body), 422):
            assert error["loc"][0] == "body" and "payload" not in error["loc"], error


@pytest.mark.parametrize("body", ["[]", '"a change"', "null", "5"])
def test_a_body_that_is_not_an_object_says_so_without_internal_names(api, body):
    [error] = assert_shape(api.post("/api/v1/changes", body), 422)
    assert error["loc"] == ["body"]
    assert "JSON object" in error["msg"]
    assert "SingleChangeIn" not in error["msg"] and "instance" not in error["msg"]


def test_a_batch_item_that_is_not_an_object_names_no_class(api):
    body = {"workflow": "ticket-triage", "run": "r", "changes": [5]}
    [error] = assert_shape(api.post("/api/v1/changes/batch", body), 422)
    assert error["loc"] == ["body", "changes", 0]
    assert "ChangeIn" not in error["msg"]


def test_a_huge_unknown_field_name_is_not_echoed_back(api, ticket):
    name = "x" * 100_000
    response = api.post("/api/v1/changes", one(ticket, **{name: 1}))
    assert_shape(response, 422)
    assert len(response.content) < 1000
    response = api.post("/api/v1/changes", one(ticket, values={name: "a"}))
    assert_shape(response, 422)
    assert len(response.content) < 1000


def test_a_batch_of_many_bad_changes_answers_a_bounded_list(api, ticket):
    changes = [ticket_change(ticket, operation_id=f"op-{i}", risk="high") for i in range(1000)]
    response = api.post("/api/v1/changes/batch", {"workflow": "ticket-triage", "run": "r", "changes": changes})
    detail = assert_shape(response, 422)
    assert len(detail) <= 21
    assert "more problems" in detail[-1]["msg"]


def test_a_wrong_method_answers_json_405(api):
    response = api.get("/api/v1/changes")
    [error] = assert_shape(response, 405)
    assert response["Allow"] == "POST"


def test_an_unknown_api_path_answers_json_404(api):
    assert_shape(api.get("/api/v1/no-such-thing"), 404)


def test_an_unknown_change_answers_json_404_in_the_same_shape(api):
    assert_shape(api.get("/api/v1/changes/123456"), 404)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_not_sent_as_json_is_415(api, ticket, content_type):
    response = api.client.post("/api/v1/changes", data=json.dumps(one(ticket)), content_type=content_type)
    [error] = assert_shape(response, 415)
    assert error["loc"] == ["header", "Content-Type"]


def test_json_with_a_charset_or_a_json_suffix_is_read(api, ticket):
    response = api.client.post(
        "/api/v1/changes", data=json.dumps(one(ticket)), content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 201, response.content
    response = api.client.post(
        "/api/v1/changes", data=json.dumps(one(ticket, operation_id="op-2")), content_type="application/merge+json"
    )
    assert response.status_code == 201, response.content


def test_401_and_413_have_the_same_shape(client, api, ticket, settings):
    response = client.post("/api/v1/changes", json.dumps(one(ticket)), content_type="application/json")
    assert_shape(response, 401)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert_shape(api.post("/api/v1/changes", one(ticket, reasoning="x" * 5000)), 413)


def test_intake_refusals_have_the_same_shape(api, ticket):
    assert_shape(api.post("/api/v1/changes", one(ticket, record_type="spaceship")), 422)
    assert_shape(api.post("/api/v1/changes", one(ticket, workflow="nope")), 422)


def test_the_openapi_schema_declares_every_error_with_its_shape(client):
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    for path, method in [("/api/v1/changes/{change_id}", "get"), ("/api/v1/runs/{run_id}", "get")]:
        assert {"200", "401", "404", "422"} <= set(paths[path][method]["responses"])
    for path in ("/api/v1/changes", "/api/v1/changes/batch"):
        assert {"400", "401", "403", "409", "413", "415", "422"} <= set(paths[path]["post"]["responses"])
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["detail"]["type"] == "array"
    ranges = paths["/api/v1/changes/{change_id}"]["get"]["parameters"][0]["schema"]
    assert ranges["minimum"] == 1 and ranges["maximum"] == 2**63 - 1


def test_a_customer_reference_still_works(api, ticket):
    customer = make_customer(name="Other")
    body = one(ticket, operation="create", records=[], values={"customer": customer.pk, "subject": "Hello"})
    assert api.post("/api/v1/changes", body).status_code == 201
