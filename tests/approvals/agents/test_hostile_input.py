"""What an agent may not send: text no page can show (lone surrogates), control characters,
bidirectional overrides, values outside their field's bounds. Refused at intake with a 422."""

from __future__ import annotations

import json

import pytest

from approvals.models import Change
from tests.factories import make_invoice, ticket_change


def one(ticket, **overrides):
    return {"workflow": "ticket-triage", "run": "r-1", **ticket_change(ticket, **overrides)}


def refused(response, loc: list, status: int = 422, stored: int = 0) -> str:
    assert response.status_code == status, response.content[:500]
    [error] = response.json()["detail"]
    assert error["loc"] == loc, error
    assert Change.objects.count() == stored
    return error["msg"]


def test_a_lone_surrogate_in_a_value_is_refused_and_the_queue_still_works(api, ticket, client, support):
    response = api.post("/api/v1/changes", json.dumps(one(ticket, values={"tags": "x\ud800y"}, risk=0.9)))
    assert "surrogate" in refused(response, ["body", "values", "tags"])
    client.force_login(support)
    assert client.get("/review/").status_code == 200


def test_raw_surrogate_bytes_are_not_utf8_and_are_refused(api, ticket):
    body = json.dumps(one(ticket, values={"tags": "xZZZy"})).encode().replace(b"ZZZ", b"\xed\xa0\x80")
    assert "UTF-8" in refused(api.post("/api/v1/changes", body), ["body"], status=400)


def test_a_surrogate_pair_is_a_character_like_any_other(api, ticket):
    # json.dumps writes an emoji as an escaped surrogate pair: that is valid text.
    response = api.post("/api/v1/changes", json.dumps(one(ticket, values={"tags": "billing \U0001f4b8"})))
    assert response.status_code == 201, response.content
    assert Change.objects.get().values == {"tags": "billing \U0001f4b8"}


@pytest.mark.parametrize(
    "text, what",
    [
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\tb", "U+0009"),
        ("a\x1bb", "U+001B"),
        ("a\x85b", "U+0085"),
        ("refund\u202eusd", "U+202E"),
        ("a\u2066b", "U+2066"),
    ],
)
def test_control_characters_in_one_line_text_are_refused(api, ticket, text, what):
    response = api.post("/api/v1/changes", one(ticket, values={"tags": text}))
    assert what in refused(response, ["body", "values", "tags"])


def test_multi_line_text_may_hold_newlines_and_tabs_but_not_nul(api, ticket):
    body = one(ticket, values={"internal_note": "line one\n\tline two\r\n"}, records=[])
    body["records"] = [{"id": ticket.pk, "expected": {"internal_note": ""}}]
    assert api.post("/api/v1/changes", body).status_code == 201
    body = {**body, "operation_id": "op-2", "values": {"internal_note": "a\x00b"}}
    refused(api.post("/api/v1/changes", body), ["body", "values", "internal_note"], stored=1)


def test_right_to_left_text_is_allowed(api, ticket):
    response = api.post("/api/v1/changes", one(ticket, values={"tags": "\u05d7\u05e9\u05d1\u05d5\u05df \u200f"}))
    assert response.status_code == 201, response.content


def test_an_expected_value_may_hold_what_a_record_holds(api, ticket):
    ticket.tags = "a\tb"
    ticket.save()
    body = one(ticket, records=[{"id": ticket.pk, "expected": {"tags": "a\tb"}}])
    assert api.post("/api/v1/changes", body).status_code == 201
    body = one(ticket, operation_id="op-2", records=[{"id": ticket.pk, "expected": {"tags": "a\x00b"}}])
    refused(api.post("/api/v1/changes", body), ["body", "records", 0, "expected", "tags"], stored=1)


@pytest.mark.parametrize("field", ["operation_id", "run", "workflow", "record_type"])
@pytest.mark.parametrize("text", ["a\x00b", "a\nb", "op\u202e1", "x\ud800y", "a\u200bb"])
def test_identifiers_hold_only_printable_characters(api, ticket, field, text):
    response = api.post("/api/v1/changes", json.dumps(one(ticket, **{field: text})))
    refused(response, ["body", field])


@pytest.mark.parametrize("text", ["a\x00b", "because\u202e", "x\ud800y", "a\x07b"])
def test_reasoning_holds_no_control_characters(api, ticket, text):
    refused(api.post("/api/v1/changes", json.dumps(one(ticket, reasoning=text))), ["body", "reasoning"])


def test_reasoning_may_span_lines(api, ticket):
    assert api.post("/api/v1/changes", one(ticket, reasoning="First,\n\tthen.\r\n")).status_code == 201


def test_a_surrogate_in_a_value_key_is_refused(api, ticket):
    response = api.post("/api/v1/changes", json.dumps(one(ticket, values={"t\ud800": "a"})))
    assert response.status_code == 422, response.content
    assert Change.objects.count() == 0


def test_a_reviewer_cannot_correct_a_value_into_hostile_text(api, ticket, support, client):
    from tests.factories import propose_waiting

    change = propose_waiting(api, ticket)
    client.force_login(support)
    response = client.post(f"/changes/{change.pk}/edit", {"tags": "refund\u202eusd"})
    assert response.status_code == 422
    assert "U+202E" in response.content.decode()
    change.refresh_from_db()
    assert change.edited_values is None and change.status == Change.Status.PENDING_REVIEW


# Bounds ---------------------------------------------------------------------------------


def invoice_update(invoice, amount, **extra):
    return {
        "workflow": "ticket-triage",
        "run": "r-1",
        "operation_id": "inv-1",
        "record_type": "invoice",
        "records": [{"id": invoice.pk, "expected": {"amount": str(invoice.amount)}}],
        "values": {"amount": amount},
        "risk": 0.1,
        "confidence": 0.9,
        **extra,
    }


@pytest.mark.parametrize("amount", ["-5.00", -5, "-0.01"])
def test_a_negative_invoice_amount_is_refused(api, amount):
    invoice = make_invoice()
    assert "at least 0.00" in refused(
        api.post("/api/v1/changes", invoice_update(invoice, amount)), ["body", "values", "amount"]
    )


def test_an_invoice_may_be_zero(api):
    assert api.post("/api/v1/changes", invoice_update(make_invoice(), "0.00")).status_code == 201


@pytest.mark.parametrize("amount", ["-50.00", "0.00"])
def test_a_refund_of_nothing_or_less_is_refused(api, amount):
    body = {
        "workflow": "ticket-triage",
        "run": "r-1",
        "operation_id": "refund-1",
        "record_type": "refund",
        "operation": "create",
        "values": {"invoice": make_invoice().pk, "amount": amount},
        "risk": 0.1,
        "confidence": 0.9,
    }
    assert "at least 0.01" in refused(api.post("/api/v1/changes", body), ["body", "values", "amount"])


def test_an_expected_amount_outside_the_bounds_is_what_the_agent_saw(api):
    # A record may hold a value the bounds now refuse; the agent may say it saw it, and correct it.
    invoice = make_invoice(amount="-5.00")
    assert api.post("/api/v1/changes", invoice_update(invoice, "5.00")).status_code == 201


def test_bounds_are_declared_for_registered_fields_only():
    from django.core.exceptions import ImproperlyConfigured

    from demo.models import Invoice
    from undo.registry import register

    with pytest.raises(ImproperlyConfigured, match="customer"):
        register(
            Invoice,
            name="invoice-again",
            owner_group="finance",
            fields=["amount"],
            describe=str,
            bounds={"customer": (0, None)},
        )
