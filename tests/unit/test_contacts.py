"""How an event names its contact, and how contact records are read."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.contacts import (
    DEFAULT_ID_PARAMS,
    Contact,
    Identifier,
    canonical_field,
    identification_order,
    identifiers,
    normalize,
    parse_contact,
)
from processor.errors import Rejected
from processor.reasons import Reason

#: The default list exactly as the spec gives it, in its order.
SPEC_DEFAULTS = (
    "ContactId",
    "Contact_id",
    "Email",
    "EmailAddress",
    "UserEmail",
    "ContactEmail",
    "Phone",
    "SMS",
    "PhoneNumber",
    "PushToken",
    "ContactKey",
    "Contact_key",
)


def idents(params: dict[str, Any], custom: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    found = identifiers(params, identification_order(custom))
    return [(i.param, i.field, i.value) for i in found]


# --- identification order ---------------------------------------------------------------------


def test_default_params_are_the_spec_list_in_its_order() -> None:
    assert tuple(name for name, _ in DEFAULT_ID_PARAMS) == SPEC_DEFAULTS


def test_order_is_custom_then_external_customer_id_then_defaults() -> None:
    order = identification_order(["token", "LoyaltyCard"])
    assert [name for name, _ in order] == [
        "token",
        "LoyaltyCard",
        "externalCustomerId",
        *SPEC_DEFAULTS,
    ]


def test_without_custom_params_external_customer_id_comes_first() -> None:
    assert identification_order(())[0] == ("externalCustomerId", "externalCustomerId")


@pytest.mark.parametrize(
    ("param", "field"),
    [
        ("ContactId", "id"),
        ("Contact_id", "id"),
        ("Email", "email"),
        ("EmailAddress", "email"),
        ("UserEmail", "email"),
        ("ContactEmail", "email"),
        ("Phone", "phone"),
        ("SMS", "phone"),
        ("PhoneNumber", "phone"),
        ("PushToken", "pushToken"),
        ("ContactKey", "contactKey"),
        ("Contact_key", "contactKey"),
    ],
)
def test_each_default_param_names_its_contact_field(param: str, field: str) -> None:
    assert idents({param: "v"}) == [(param, field, "v")]


def test_identifiers_come_in_priority_order_not_param_order() -> None:
    params = {
        "Contact_key": "ck",
        "phone": "+380501234567",
        "email": "a@example.com",
        "externalCustomerId": "AV13760",
        "token": "T-1",
        "ContactId": "c-9",
    }
    assert idents(params, custom=("token",)) == [
        ("token", "token", "T-1"),
        ("externalCustomerId", "externalCustomerId", "AV13760"),
        ("ContactId", "id", "c-9"),
        ("email", "email", "a@example.com"),
        ("phone", "phone", "+380501234567"),
        ("Contact_key", "contactKey", "ck"),
    ]


def test_custom_params_keep_their_configured_order() -> None:
    params = {"a": "1", "b": "2"}
    assert [p for p, _, _ in idents(params, custom=("b", "a"))] == ["b", "a"]
    assert [p for p, _, _ in idents(params, custom=("a", "b"))] == ["a", "b"]


def test_params_outside_the_order_are_not_identifiers() -> None:
    assert idents({"token": "T-1", "externalOrderId": "o-1", "totalCost": "1"}) == []


# --- names case-insensitive, values exact except email ---------------------------------------


@pytest.mark.parametrize("name", ["email", "EMAIL", "eMaIl", "Email"])
def test_param_names_match_case_insensitively(name: str) -> None:
    assert idents({name: "a@example.com"}) == [(name, "email", "a@example.com")]


@pytest.mark.parametrize("name", ["EXTERNALCUSTOMERID", "externalcustomerid"])
def test_external_customer_id_name_matches_case_insensitively(name: str) -> None:
    assert idents({name: "AV13760"}) == [(name, "externalCustomerId", "AV13760")]


def test_custom_param_name_matches_case_insensitively() -> None:
    assert idents({"TOKEN": "Abc"}, custom=("Token",)) == [("TOKEN", "token", "Abc")]


@pytest.mark.parametrize("param", ["Email", "EmailAddress", "UserEmail", "ContactEmail"])
def test_email_values_are_lower_cased(param: str) -> None:
    assert idents({param: "Jane.Doe@Example.COM"}) == [(param, "email", "jane.doe@example.com")]


@pytest.mark.parametrize(
    "param", ["externalCustomerId", "ContactId", "Phone", "PushToken", "ContactKey"]
)
def test_other_values_keep_their_case(param: str) -> None:
    [(_, _, value)] = idents({param: "AbC-xYz"})
    assert value == "AbC-xYz"


def test_custom_email_param_is_lower_cased_like_email() -> None:
    assert idents({"email": "A@B.C"}, custom=("email",)) == [("email", "email", "a@b.c")]


def test_numeric_value_is_an_identifier_as_text() -> None:
    assert idents({"phone": 380501234567}) == [("phone", "phone", "380501234567")]


@pytest.mark.parametrize("value", [None, "", True, False, 1.5, ["a@example.com"], {"v": 1}])
def test_empty_or_non_text_values_are_skipped(value: Any) -> None:
    assert idents({"email": value, "phone": "+1"}) == [("phone", "phone", "+1")]


def test_the_same_field_and_value_is_tried_once() -> None:
    params = {"Email": "A@example.com", "UserEmail": "a@example.com", "ContactEmail": "b@x.io"}
    assert idents(params) == [
        ("Email", "email", "a@example.com"),
        ("ContactEmail", "email", "b@x.io"),
    ]


def test_when_a_name_comes_in_two_cases_the_first_param_wins() -> None:
    assert idents({"email": "first@x.io", "EMAIL": "second@x.io"}) == [
        ("email", "email", "first@x.io")
    ]


def test_identifier_as_dict() -> None:
    assert Identifier("Email", "email", "a@b").as_dict() == {
        "param": "Email",
        "field": "email",
        "value": "a@b",
    }


# --- contact records --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("id", "id"),
        ("ID", "id"),
        ("email", "email"),
        ("EMAIL", "email"),
        ("externalcustomerid", "externalCustomerId"),
        ("ExternalCustomerID", "externalCustomerId"),
        ("Phone", "phone"),
        ("contactkey", "contactKey"),
        ("PUSHTOKEN", "pushToken"),
        ("Token", "token"),
        ("LoyaltyCard", "loyaltycard"),
    ],
)
def test_canonical_field_names(name: str, canonical: str) -> None:
    assert canonical_field(name) == canonical


def test_parse_contact_reads_id_and_identifiers_under_canonical_names() -> None:
    contact = parse_contact(
        {
            "ID": "c-1",
            "Email": "Jane@Example.com",
            "PHONE": "+380501234567",
            "ExternalCustomerId": "AV13760",
            "Token": "T-1",
            "note": "",
            "nickname": None,
        }
    )
    assert contact == Contact(
        id="c-1",
        identifiers={
            "email": "Jane@Example.com",
            "phone": "+380501234567",
            "externalCustomerId": "AV13760",
            "token": "T-1",
        },
    )


def test_parse_contact_turns_numbers_into_text() -> None:
    contact = parse_contact({"id": 42, "phone": 380501234567})
    assert contact.id == "42"
    assert contact.identifiers == {"phone": "380501234567"}


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({}, id="empty"),
        pytest.param({"email": "a@example.com"}, id="no-id"),
        pytest.param({"id": "", "email": "a@example.com"}, id="empty-id"),
        pytest.param({"id": None, "email": "a@example.com"}, id="null-id"),
    ],
)
def test_contact_without_id_is_invalid_contact(record: dict[str, Any]) -> None:
    with pytest.raises(Rejected) as info:
        parse_contact(record)
    assert info.value.reason is Reason.INVALID_CONTACT
    assert "id" in info.value.detail


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", True),
        ("id", ["c-1"]),
        ("email", {"address": "a@example.com"}),
        ("phone", 1.5),
        ("token", False),
    ],
)
def test_contact_with_non_text_value_is_invalid_contact(name: str, value: Any) -> None:
    record = {"id": "c-1", name: value}
    with pytest.raises(Rejected) as info:
        parse_contact(record)
    assert info.value.reason is Reason.INVALID_CONTACT
    assert name in info.value.detail


def test_index_entries_lower_case_email_only() -> None:
    contact = parse_contact({"id": "C-1", "email": "Jane@Example.com", "token": "AbC"})
    assert sorted(contact.index_entries()) == [
        ("email", "jane@example.com"),
        ("id", "C-1"),
        ("token", "AbC"),
    ]
    # The record keeps what was imported; only the index is normalized.
    assert contact.as_dict() == {"id": "C-1", "email": "Jane@Example.com", "token": "AbC"}


def test_event_identifiers_meet_contact_index_entries() -> None:
    # What identification looks up is what a contact is indexed under, field and value alike.
    contact = parse_contact(
        {"id": "c-1", "Email": "Jane@Example.com", "externalCustomerId": "AV1", "token": "T"}
    )
    params = {"UserEmail": "JANE@example.COM", "externalcustomerid": "AV1", "TOKEN": "T"}
    found = identifiers(params, identification_order(("Token",)))
    entries = set(contact.index_entries())
    assert [(i.field, i.value) in entries for i in found] == [True, True, True]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("email", "A@B.C", "a@b.c"), ("phone", "A@B.C", "A@B.C"), ("id", "AbC", "AbC")],
)
def test_normalize(field: str, value: str, expected: str) -> None:
    assert normalize(field, value) == expected


def by_definition(
    params: dict[str, Any], order: tuple[tuple[str, str], ...]
) -> list[tuple[str, str, str]]:
    """Identification as the spec words it, spelled out slowly: for each name of the order in
    turn, the event's first param of that name in any case, if it has a usable value."""
    first: dict[str, tuple[str, Any]] = {}
    for name, value in params.items():
        first.setdefault(name.lower(), (name, value))
    found: list[tuple[str, str, str]] = []
    for param, field in order:
        hit = first.get(param.lower())
        if hit is None:
            continue
        name, value = hit
        if value in (None, "") or isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        ident = (name, field, normalize(field, str(value)))
        if all((f, v) != ident[1:] for _, f, v in found):
            found.append(ident)
    return found


NAMES = ["Email", "email", "EMAIL", "UserEmail", "externalCustomerId", "ExternalCustomerID",
         "SMS", "sms", "Phone", "token", "Token", "ContactId", "contact_id", "other"]  # fmt: skip


@given(
    params=st.dictionaries(
        st.sampled_from(NAMES),
        st.one_of(
            st.none(),
            st.sampled_from(["", "a@b.c", "A@B.C", "x"]),
            st.integers(-2, 2),
            st.booleans(),
            st.lists(st.integers(), max_size=1),
        ),
        max_size=6,
    ),
    custom=st.lists(st.sampled_from(["token", "Email", "SMS", "phone", "ContactId"]), max_size=3),
)
def test_identifiers_are_what_the_definition_gives(
    params: dict[str, Any], custom: list[str]
) -> None:
    order = identification_order(custom)
    assert idents(params, tuple(custom)) == by_definition(params, order)
