"""The governed-record registry: only registered types and fields, strict values, plain words."""

from __future__ import annotations

from decimal import Decimal

import pytest

from demo.models import Customer, Ticket
from undo import registry
from undo.registry import InvalidValue


def test_the_demo_record_types_are_registered_with_history():
    assert {r.name for r in registry.all_record_types()} == {"customer", "ticket", "invoice", "refund"}
    for rtype in registry.all_record_types():
        history = rtype.model.history.model
        assert {"cs_change_id", "cs_run_id", "cs_agent_id"} <= {f.name for f in history._meta.fields}
        assert rtype.soft_deletable


def test_only_registered_fields_can_be_targeted():
    with pytest.raises(InvalidValue, match="may not change 'deleted_at'"):
        registry.get("ticket").coerce("deleted_at", None)
    with pytest.raises(KeyError):
        registry.get("spaceship")


@pytest.mark.parametrize(
    "record_type, field, value, expected",
    [
        ("invoice", "amount", "10.5", Decimal("10.50")),
        ("invoice", "amount", 10, Decimal("10.00")),
        ("ticket", "status", "resolved", "resolved"),
        ("ticket", "tags", "", ""),
    ],
)
def test_it_coerces_json_values(record_type, field, value, expected):
    assert registry.get(record_type).coerce(field, value) == expected


@pytest.mark.parametrize(
    "record_type, field, value, message",
    [
        ("invoice", "amount", "ten", "must be a number"),
        ("invoice", "amount", True, "must be a number"),
        ("invoice", "amount", "10.005", "decimal places"),
        ("invoice", "amount", "NaN", "finite"),
        ("ticket", "status", "exploded", "must be one of"),
        ("ticket", "subject", 42, "must be text"),
        ("ticket", "subject", "", "may not be empty"),
        ("customer", "billing_email", "not-an-email", "valid email"),
        ("customer", "tier", None, "may not be empty"),
    ],
)
def test_it_refuses_values_that_do_not_fit(db, record_type, field, value, message):
    with pytest.raises(InvalidValue, match=message):
        registry.get(record_type).coerce(field, value)


def test_a_foreign_key_must_name_an_existing_record(db):
    with pytest.raises(InvalidValue, match="no customer has id 999"):
        registry.get("ticket").coerce("customer", 999)


def test_it_describes_a_change_in_plain_words(db):
    customer = Customer.objects.create(name="Northwind Solar", billing_email="ap@northwind.example")
    text = registry.get("customer").describe_change("update", customer, {"billing_email": "billing@northwind.example"})
    assert text == (
        f"Change the billing email of Northwind Solar (customer #{customer.pk}) "
        "from ap@northwind.example to billing@northwind.example"
    )
    ticket = Ticket.objects.create(customer=customer, subject="Refund")
    text = registry.get("ticket").describe_change("update", ticket, {"status": "resolved", "tags": "billing"})
    assert text.endswith("from open to resolved, and the tags from (empty) to billing")
    assert registry.get("ticket").describe_change("soft_delete", ticket, {}).startswith(f"Delete ticket #{ticket.pk}")
    assert registry.get("customer").touches_irreversible(["permission_level"])
    assert not registry.get("customer").touches_irreversible(["billing_email"])
    assert registry.get("refund").touches_irreversible([])


@pytest.mark.parametrize(
    "record_type, values, message",
    [
        ("invoice", {"amount": "-5.00"}, "at least 0.00"),
        ("refund", {"amount": "0.00"}, "at least 0.01"),
        ("ticket", {"tags": "a\x00b"}, r"U\+0000"),
        ("ticket", {"subject": "line\nbreak"}, "one line"),
        ("ticket", {"tags": "x\ud800"}, "surrogate"),
        ("ticket", {"internal_note": "evil\u202e"}, r"override U\+202E"),
        # In plain words, not Django's "Ensure that there are no more than 12 digits in total".
        ("invoice", {"amount": "12345678901.00"}, r"must be less than 10,000,000,000 \(at most 10 digits before"),
        ("invoice", {"amount": "1.005"}, "at most 2 decimal places"),
        ("ticket", {"subject": "x" * 301}, r"at most 300 characters long \(this is 301\)"),
    ],
)
def test_clean_values_refuses_what_a_registration_does_not_allow(db, record_type, values, message):
    with pytest.raises(registry.KeyedInvalid, match=message):
        registry.get(record_type).clean_values(values)


def test_values_an_agent_saw_may_hold_what_a_record_holds(db):
    ticket = registry.get("ticket")
    assert ticket.clean_values({"tags": "a\tb"}, seen=True) == {"tags": "a\tb"}
    assert registry.get("invoice").clean_values({"amount": "-5.00"}, seen=True) == {"amount": "-5.00"}
    with pytest.raises(registry.KeyedInvalid, match="NUL"):
        ticket.clean_values({"tags": "a\x00b"}, seen=True)


def test_multi_line_text_keeps_its_lines(db):
    assert registry.get("ticket").clean_values({"internal_note": "one\n\ttwo"}) == {"internal_note": "one\n\ttwo"}


def test_missing_references_are_found_in_one_query(db, django_assert_num_queries):
    from tests.factories import make_customer

    customer = make_customer()
    values = [{"customer": customer.pk}, {"customer": 999999}, {"subject": "no reference"}, {"customer": customer.pk}]
    with django_assert_num_queries(1):
        missing = registry.get("ticket").missing_references(values)
    assert list(missing) == [1] and missing[1].key == "customer"


def test_a_reference_reads_as_the_record_it_names(db):
    customer = Customer.objects.create(name="Northwind Solar", billing_email="ap@northwind.example")
    text = registry.get("ticket").describe_change("create", None, {"customer": customer.pk, "subject": "Refund"})
    assert text == f"Create a ticket with Northwind Solar (customer #{customer.pk}), subject Refund"
    assert registry.get("ticket").display("customer", 10**6) == "customer #1000000 (not found)"
    # What an agent said it saw may be no id at all: still words, never an error.
    assert registry.get("ticket").display("customer", "abc") == "customer #abc"
    assert registry.get("ticket").display("customer", 2**70).startswith(f"customer #{2**70}")


def test_a_change_reads_in_the_registrations_field_order_whatever_the_order_of_its_values(db):
    # PostgreSQL's jsonb hands keys back in its own order; the sentence must not depend on it.
    customer = Customer.objects.create(name="Northwind Solar", billing_email="ap@northwind.example")
    text = registry.get("ticket").describe_change("create", None, {"subject": "Refund", "customer": customer.pk})
    assert text == f"Create a ticket with Northwind Solar (customer #{customer.pk}), subject Refund"
