"""parse_event, rule by rule: every reason it can raise, and what a valid event becomes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from processor.errors import Rejected
from processor.events import (
    ITEM_FIELDS,
    EventType,
    Limits,
    OrderEvent,
    Status,
    items_total,
    parse_event,
)
from processor.reasons import Reason

from .builders import SEED_EXAMPLE, full_params, item, raw_event


def rejected(raw: bytes | None, limits: Limits = Limits()) -> Rejected:  # noqa: B008 - frozen
    with pytest.raises(Rejected) as info:
        parse_event(raw, limits)
    return info.value


def parse(**params: Any) -> OrderEvent:
    params.setdefault("externalOrderId", "o-1")
    return parse_event(raw_event("orderCreated", **params))


# --- malformed_json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"{'eventTypeKey': 'orderCreated'}", id="single-quotes"),
        pytest.param(b'{"a": 1,}', id="trailing-comma"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(b"\xff\xfe{}", id="not-utf8-bom"),
        pytest.param(b'{"eventTypeKey": "orderCreated\xc3"}', id="not-utf8-in-string"),
        pytest.param('{"x": "caf\u00e9"}'.encode("latin-1"), id="latin-1"),
    ],
)
def test_not_json_is_malformed_json(raw: bytes) -> None:
    assert rejected(raw).reason is Reason.MALFORMED_JSON


# --- invalid_event ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "detail"),
    [
        pytest.param([], "JSON object", id="array"),
        pytest.param("orderCreated", "JSON object", id="string"),
        pytest.param(42, "JSON object", id="number"),
        pytest.param(None, "JSON object", id="null"),
        pytest.param({"params": []}, "eventTypeKey", id="no-event-type"),
        pytest.param({"eventTypeKey": 1, "params": []}, "eventTypeKey", id="event-type-number"),
        pytest.param({"eventTypeKey": "orderCreated"}, "params", id="no-params"),
        pytest.param({"eventTypeKey": "orderCreated", "params": {}}, "params", id="params-object"),
        pytest.param(
            {"eventTypeKey": "orderCreated", "params": ["externalOrderId"]},
            "params[0]",
            id="param-not-object",
        ),
        pytest.param(
            {"eventTypeKey": "orderCreated", "params": [{"value": "x"}]},
            "params[0]",
            id="param-without-name",
        ),
        pytest.param(
            {
                "eventTypeKey": "orderCreated",
                "params": [{"name": "externalOrderId", "value": "o"}, {"name": 7, "value": 1}],
            },
            "params[1]",
            id="param-name-number",
        ),
    ],
)
def test_wrong_shape_is_invalid_event(doc: Any, detail: str) -> None:
    error = rejected(orjson.dumps(doc))
    assert error.reason is Reason.INVALID_EVENT
    assert detail in error.detail


def test_no_value_at_all_is_invalid_event() -> None:
    assert rejected(None).reason is Reason.INVALID_EVENT


def test_duplicate_param_name_is_invalid_event() -> None:
    raw = orjson.dumps(
        {
            "eventTypeKey": "orderCreated",
            "params": [
                {"name": "externalOrderId", "value": "o-1"},
                {"name": "totalCost", "value": "1.00"},
                {"name": "totalCost", "value": "2.00"},
            ],
        }
    )
    error = rejected(raw)
    assert error.reason is Reason.INVALID_EVENT
    assert "totalCost" in error.detail


def test_param_names_differing_in_case_are_two_params() -> None:
    parsed = parse(email="a@example.com", Email="b@example.com")
    assert parsed.extra == {"email": "a@example.com", "Email": "b@example.com"}


# --- too_large, too_deep ----------------------------------------------------------------------


def test_record_over_the_byte_limit_is_too_large() -> None:
    raw = raw_event("orderCreated", **full_params(note="x" * 200))
    assert parse_event(raw, Limits(max_bytes=len(raw))).external_order_id == "o-1"
    error = rejected(raw, Limits(max_bytes=len(raw) - 1))
    assert error.reason is Reason.TOO_LARGE
    assert str(len(raw)) in error.detail


def nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("max_depth", [3, 5, 32])
def test_depth_walk_allows_the_limit_and_rejects_one_more(max_depth: int) -> None:
    # event object (1) > params array (2) > param object (3) > value arrays (4...)
    at_limit = raw_event("orderCreated", externalOrderId="o-1", deep=nested_list(max_depth - 3))
    over = raw_event("orderCreated", externalOrderId="o-1", deep=nested_list(max_depth - 2))
    assert parse_event(at_limit, Limits(max_depth=max_depth)).external_order_id == "o-1"
    error = rejected(over, Limits(max_depth=max_depth))
    assert error.reason is Reason.TOO_DEEP
    assert str(max_depth) in error.detail


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 2000 + b"]" * 2000, id="arrays"),
        pytest.param(b'{"a":' * 2000 + b"1" + b"}" * 2000, id="objects"),
        pytest.param(
            b'{"eventTypeKey":"orderCreated","params":[{"name":"x","value":'
            + b"[" * 2000
            + b"]" * 2000
            + b"}]}",
            id="inside-a-param",
        ),
    ],
)
def test_payload_deeper_than_the_json_parser_allows_is_too_deep(raw: bytes) -> None:
    # orjson refuses these itself (its own depth limit); still nesting, not malformed JSON.
    assert rejected(raw).reason is Reason.TOO_DEEP


# --- what a rejection says about the event ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="malformed"),
        pytest.param(raw_event("orderShipped", externalOrderId="o-1"), id="unsupported"),
        pytest.param(raw_event("orderCreated", totalCost="1"), id="no-order-id"),
    ],
)
def test_rejection_before_the_order_id_names_no_order(raw: bytes) -> None:
    error = rejected(raw)
    assert (error.event_type, error.external_order_id) == (None, None)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"totalCost": "-1"}, id="invalid-field"),
        pytest.param({"items": [item(quantity=0)]}, id="invalid-item"),
    ],
)
def test_rejection_after_the_order_id_names_the_order(params: dict[str, Any]) -> None:
    error = rejected(raw_event("orderUpdated", externalOrderId="o-7", **params))
    assert (error.event_type, error.external_order_id) == ("orderUpdated", "o-7")


# --- unsupported_event_type -------------------------------------------------------------------


@pytest.mark.parametrize("type_key", ["orderDeleted", "ordercreated", "OrderCreated", "", "order"])
def test_other_event_types_are_unsupported(type_key: str) -> None:
    error = rejected(raw_event(type_key, externalOrderId="o-1"))
    assert error.reason is Reason.UNSUPPORTED_EVENT_TYPE
    assert repr(type_key) in error.detail


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_supported_event_type_parses(event_type: EventType) -> None:
    assert parse_event(raw_event(str(event_type), externalOrderId="o-1")).type is event_type


# --- missing_required / externalOrderId -------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="absent"),
        pytest.param({"externalOrderId": None}, id="null"),
        pytest.param({"externalOrderId": ""}, id="empty"),
        pytest.param({"ExternalOrderId": "o-1"}, id="other-case"),
    ],
)
def test_order_without_external_order_id_is_missing_required(params: dict[str, Any]) -> None:
    error = rejected(raw_event("orderDelivered", **params))
    assert error.reason is Reason.MISSING_REQUIRED
    assert error.detail == "externalOrderId"


@pytest.mark.parametrize("value", [True, 1.5, ["o-1"], {"id": "o-1"}])
def test_external_order_id_of_wrong_type_is_invalid_field(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId=value))
    assert error.reason is Reason.INVALID_FIELD
    assert "externalOrderId" in error.detail


def test_numeric_external_order_id_becomes_a_string() -> None:
    assert parse(externalOrderId=12345679).external_order_id == "12345679"


# --- invalid_field: status, date, totalCost, currency -----------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_every_documented_status_is_accepted(status: Status) -> None:
    assert parse(status=str(status)).status is status


@pytest.mark.parametrize(
    "value", ["delivered", "SHIPPED", "", " DELIVERED", 1, True, ["DELIVERED"]]
)
def test_other_status_is_invalid_field(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", status=value))
    assert error.reason is Reason.INVALID_FIELD
    assert "status" in error.detail


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2020-05-14 10:11:00", id="space"),
        pytest.param("2020-05-14", id="date-only"),
        pytest.param("2020-05-14T10:11", id="no-seconds"),
        pytest.param("2020-05-14T10:11:00Z", id="zone"),
        pytest.param("2020-05-14T10:11:00.123", id="fraction"),
        pytest.param("14.05.2020 10:11:00", id="other-order"),
        pytest.param("2020-5-14T10:11:00", id="one-digit-month"),
        pytest.param(1589451060, id="epoch"),
        pytest.param("", id="empty"),
    ],
)
def test_date_not_in_the_documented_format_is_invalid_field(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", date=value))
    assert error.reason is Reason.INVALID_FIELD
    assert "date" in error.detail


@pytest.mark.parametrize(
    "value",
    [
        "2020-02-30T00:00:00",
        "2021-02-29T00:00:00",
        "2020-13-01T00:00:00",
        "2020-00-10T00:00:00",
        "2020-04-31T00:00:00",
        "2020-05-14T24:00:00",
        "2020-05-14T10:60:00",
        "2020-05-14T10:11:61",
    ],
)
def test_date_that_is_not_on_the_calendar_is_invalid_field(value: str) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", date=value))
    assert error.reason is Reason.INVALID_FIELD
    assert value in error.detail


@pytest.mark.parametrize(
    "value", ["2020-02-29T23:59:59", "2020-05-14T10:11:00", "1999-12-31T00:00:00"]
)
def test_calendar_date_is_kept_as_sent(value: str) -> None:
    assert parse(date=value).date == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("-0.01", id="negative-string"),
        pytest.param(-5, id="negative-number"),
        pytest.param("abc", id="not-numeric"),
        pytest.param("", id="empty"),
        pytest.param("12,50", id="comma"),
        pytest.param("NaN", id="nan-string"),
        pytest.param("Infinity", id="infinity-string"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param([10], id="array"),
        pytest.param({"amount": 10}, id="object"),
    ],
)
def test_total_cost_that_is_not_a_non_negative_amount_is_invalid_field(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", totalCost=value))
    assert error.reason is Reason.INVALID_FIELD
    assert "totalCost" in error.detail


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("258.0", "258.0", id="seed-string"),
        pytest.param("19.99", "19.99", id="string"),
        pytest.param(" 19.99 ", "19.99", id="padded-string"),
        pytest.param(0, "0", id="zero"),
        pytest.param(990, "990", id="integer"),
        pytest.param(1234567890123.45, "1234567890123.45", id="large-float"),
    ],
)
def test_total_cost_is_an_exact_decimal(value: Any, expected: str) -> None:
    total = parse(totalCost=value).total_cost
    assert isinstance(total, Decimal)
    assert str(total) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("19.99", "19.99"), ("0.1", "0.1"), ("1.10", "1.1")]
)
def test_total_cost_as_json_number_is_the_written_decimal_never_a_float(
    text: str, expected: str
) -> None:
    raw = (
        b'{"eventTypeKey":"orderCreated","params":[{"name":"externalOrderId","value":"o-1"},'
        b'{"name":"totalCost","value":' + text.encode() + b"}]}"
    )
    total = parse_event(raw).total_cost
    assert type(total) is Decimal
    assert total == Decimal(expected)
    assert str(total) == expected
    # What the float holds (19.99 is 19.98999999999999843...) is not what the producer wrote.
    assert total != Decimal(float(text))


@pytest.mark.parametrize("value", [1, ["UAH"], True])
def test_currency_that_is_not_a_string_is_invalid_field(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", currency=value))
    assert error.reason is Reason.INVALID_FIELD
    assert "currency" in error.detail


def test_absent_optional_fields_are_none() -> None:
    parsed = parse(totalCost=None, status=None, date=None, currency=None, items=None)
    assert (parsed.total_cost, parsed.status, parsed.date, parsed.currency, parsed.items) == (
        None,
        None,
        None,
        None,
        None,
    )


# --- items ------------------------------------------------------------------------------------


def test_items_as_an_array() -> None:
    parsed = parse(items=[item(), item(externalItemId="sku-2", quantity=2, cost=5)])
    assert parsed.items is not None
    assert [i["externalItemId"] for i in parsed.items] == ["sku-1", "sku-2"]
    assert parsed.items[1]["quantity"] == "2"
    assert parsed.items[1]["cost"] == "5"


def test_items_as_a_json_string_mean_the_same_as_the_array() -> None:
    items = [item(), item(externalItemId=7, cost=1.5, color="red")]
    as_array = parse(items=items)
    as_string = parse(items=orjson.dumps(items).decode())
    assert as_array.items == as_string.items
    assert as_string.items is not None
    assert as_string.items[1]["externalItemId"] == "7"
    assert as_string.items[1]["color"] == "red"


def test_empty_items_array_is_an_empty_tuple() -> None:
    assert parse(items=[]).items == ()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not json", id="string-not-json"),
        pytest.param('{"externalItemId": "1"}', id="string-holding-object"),
        pytest.param('"[]"', id="string-holding-string"),
        pytest.param({"externalItemId": "1"}, id="object"),
        pytest.param(5, id="number"),
        pytest.param(True, id="boolean"),
    ],
)
def test_items_that_are_not_an_array_are_invalid_field(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", items=value))
    assert error.reason is Reason.INVALID_FIELD
    assert "items" in error.detail


@pytest.mark.parametrize("field", ITEM_FIELDS)
@pytest.mark.parametrize("absent", ["missing", "null", "empty"])
def test_every_required_item_field_is_checked(field: str, absent: str) -> None:
    broken = item()
    if absent == "missing":
        del broken[field]
    else:
        broken[field] = None if absent == "null" else ""
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", items=[item(), broken]))
    assert error.reason is Reason.INVALID_ITEM
    assert error.detail == f"items[1].{field} is missing"


def test_every_required_item_field_is_the_documented_one() -> None:
    assert ITEM_FIELDS == ("externalItemId", "name", "quantity", "cost", "url", "imageUrl")


@pytest.mark.parametrize("value", ["x", 3, None, ["item"]])
def test_item_that_is_not_an_object_is_invalid_item(value: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", items=[item(), value]))
    assert error.reason is Reason.INVALID_ITEM
    assert "items[1]" in error.detail


@pytest.mark.parametrize("quantity", [0, -1, "0", "-2.5", "0.0", "many", True])
def test_quantity_not_above_zero_is_invalid_item(quantity: Any) -> None:
    error = rejected(
        raw_event("orderCreated", externalOrderId="o-1", items=[item(quantity=quantity)])
    )
    assert error.reason is Reason.INVALID_ITEM
    assert "items[0].quantity" in error.detail


@pytest.mark.parametrize("quantity", [1, "0.5", 2.25])
def test_positive_quantity_is_accepted(quantity: Any) -> None:
    parsed = parse(items=[item(quantity=quantity)])
    assert parsed.items is not None
    assert Decimal(parsed.items[0]["quantity"]) == Decimal(str(quantity))


@pytest.mark.parametrize("cost", [-1, "-0.01", "free", False, {"amount": 1}])
def test_negative_or_non_numeric_cost_is_invalid_item(cost: Any) -> None:
    error = rejected(raw_event("orderCreated", externalOrderId="o-1", items=[item(cost=cost)]))
    assert error.reason is Reason.INVALID_ITEM
    assert "items[0].cost" in error.detail


@pytest.mark.parametrize("field", ["externalItemId", "name", "url", "imageUrl"])
@pytest.mark.parametrize("value", [True, 1.5, {"text": "x"}, ["x"]])
def test_text_item_field_of_wrong_type_is_invalid_item(field: str, value: Any) -> None:
    error = rejected(
        raw_event("orderCreated", externalOrderId="o-1", items=[item(**{field: value})])
    )
    assert error.reason is Reason.INVALID_ITEM
    assert error.detail == f"items[0].{field} must be a string"


def test_nesting_beyond_the_second_level_stays_a_serialized_string() -> None:
    nested = {"size": "XL", "tags": ["a", {"b": 1}]}
    parsed = parse(items=[item(options=nested, bundle=[1, 2], plain="text", count=3, flag=False)])
    assert parsed.items is not None
    got = parsed.items[0]
    assert isinstance(got["options"], str)
    assert orjson.loads(got["options"]) == nested
    assert got["bundle"] == "[1,2]"
    # First- and second-level scalars stay as they are.
    assert (got["plain"], got["count"], got["flag"]) == ("text", 3, False)


def test_nesting_in_items_passed_as_a_string_is_serialized_too() -> None:
    text = orjson.dumps([item(options={"size": "XL"})]).decode()
    parsed = parse(items=text)
    assert parsed.items is not None
    assert parsed.items[0]["options"] == '{"size":"XL"}'


def test_item_money_is_a_decimal_string_never_a_float() -> None:
    raw = (
        b'{"eventTypeKey":"orderCreated","params":[{"name":"externalOrderId","value":"o-1"},'
        b'{"name":"items","value":[{"externalItemId":"1","name":"n","quantity":3,"cost":19.99,'
        b'"url":"u","imageUrl":"i"}]}]}'
    )
    parsed = parse_event(raw)
    assert parsed.items is not None
    assert parsed.items[0]["cost"] == "19.99"
    assert parsed.items[0]["quantity"] == "3"
    assert items_total(parsed.items) == Decimal("59.97")


def test_items_total_is_exact() -> None:
    items = (item(cost="0.10", quantity=3), item(cost="0.20", quantity="1.5"))
    parsed = parse(items=list(items))
    assert parsed.items is not None
    assert items_total(parsed.items) == Decimal("0.60")
    assert items_total(()) == Decimal(0)


# --- extra params, keyValue -------------------------------------------------------------------


def test_unnamed_params_are_kept_in_extra_as_they_came() -> None:
    parsed = parse(
        **full_params(),
        phone="380501234567",
        externalCustomerId="AV13760",
        promo={"code": "X", "levels": [1, 2]},
        note=None,
        score=1.5,
    )
    assert parsed.extra == {
        "phone": "380501234567",
        "externalCustomerId": "AV13760",
        "promo": {"code": "X", "levels": [1, 2]},
        "note": None,
        "score": 1.5,
    }
    assert set(parsed.params) == {*full_params(), *parsed.extra}


@pytest.mark.parametrize(("value", "expected"), [("380501234567", "380501234567"), (42, "42")])
def test_key_value_is_a_string(value: Any, expected: str) -> None:
    parsed = parse_event(raw_event("orderCreated", key_value=value, externalOrderId="o"))
    assert parsed.key_value == expected


def test_absent_key_value_is_none() -> None:
    assert parse().key_value is None


# --- the seed's own example -------------------------------------------------------------------


def test_seed_example_parses_fully() -> None:
    parsed = parse_event(SEED_EXAMPLE)
    assert parsed == OrderEvent(
        type=EventType.CREATED,
        external_order_id="12345679",
        key_value="380501234567",
        total_cost=Decimal("258.0"),
        status=Status.INITIALIZED,
        date="2020-05-14T10:11:00",
        currency="UAH",
        items=(
            {
                "externalItemId": "200600",
                "name": "Super Device",
                "category": "devices",
                "quantity": "1",
                "cost": "990",
                "url": "http://example.com/item/200600",
                "imageUrl": "http://example.com/item/200600/image.png",
                "description": "High quality",
            },
        ),
        extra={"phone": "380501234567", "externalCustomerId": "AV13760"},
        params=parsed.params,
    )
    assert list(parsed.params) == [
        "phone",
        "externalOrderId",
        "externalCustomerId",
        "totalCost",
        "status",
        "date",
        "currency",
        "items",
    ]
    assert str(parsed.total_cost) == "258.0"
