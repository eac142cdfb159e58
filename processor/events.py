"""Raw record bytes to a validated :class:`OrderEvent`. Pure: no I/O, no clock.

Everything a producer can get wrong raises :class:`~processor.errors.Rejected` with a reason code
and a detail that names the field, so the agent can dead-letter it and go on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from processor import codec
from processor.errors import Rejected
from processor.immutable import immutable
from processor.reasons import Reason


class EventType(StrEnum):
    CREATED = "orderCreated"
    UPDATED = "orderUpdated"
    DELIVERED = "orderDelivered"
    CANCELLED = "orderCancelled"


class Status(StrEnum):
    INITIALIZED = "INITIALIZED"
    IN_PROGRESS = "IN_PROGRESS"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    ABANDONED_SHOPPING_CART = "ABANDONED_SHOPPING_CART"


#: By value: a dict lookup costs a fifth of an Enum call, and these run for every event.
EVENT_TYPES = {member.value: member for member in EventType}
STATUSES = {member.value: member for member in Status}

#: Params with a meaning of their own; every other param is kept on the order as it came.
ORDER_FIELDS = ("externalOrderId", "totalCost", "status", "date", "currency", "items")
_ORDER_FIELD_SET = frozenset(ORDER_FIELDS)
#: What orderCreated (and an orderUpdated that creates) must carry besides a contact identifier.
REQUIRED_TO_CREATE = ("totalCost", "status", "date")
ITEM_FIELDS = ("externalItemId", "name", "quantity", "cost", "url", "imageUrl")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
#: Item fields that must be text; an integer is taken and written as its digits.
_ITEM_TEXT = ("externalItemId", "name", "url", "imageUrl")


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 1_048_576
    max_depth: int = 32


@immutable
class OrderEvent:
    """One Generate event, checked field by field. Which fields must be present depends on the
    order's state, so completeness is checked by :mod:`processor.orders`."""

    type: EventType
    external_order_id: str
    key_value: str | None
    total_cost: Decimal | None
    status: Status | None
    date: str | None
    currency: str | None
    #: None when the event carries no items param; items are JSON-ready dicts, money as strings.
    items: tuple[dict[str, Any], ...] | None
    #: Params the spec does not give a meaning to, as they came (contact identifiers among them).
    extra: Mapping[str, Any]
    #: Every param by its exact name, for contact identification.
    params: Mapping[str, Any]


def parse_event(raw: bytes | None, limits: Limits = Limits()) -> OrderEvent:
    if raw is None:
        raise Rejected(Reason.INVALID_EVENT, "the record has no value")
    if len(raw) > limits.max_bytes:
        raise Rejected(Reason.TOO_LARGE, f"{len(raw)} bytes, more than {limits.max_bytes}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson's own nesting limit (1024): it says "depth limit exceeded" (orjson 3.13), or
        # "recursion" in other versions' wording.
        message = str(exc).lower()
        if "recursion" in message or "depth limit" in message:
            raise Rejected(Reason.TOO_DEEP, f"nesting deeper than {limits.max_depth}") from None
        raise Rejected(Reason.MALFORMED_JSON, f"not JSON: {exc}") from None
    if _event_too_deep(doc, limits.max_depth):
        raise Rejected(Reason.TOO_DEEP, f"nesting deeper than {limits.max_depth}")
    if not isinstance(doc, dict):
        raise Rejected(Reason.INVALID_EVENT, f"expected a JSON object, got {_kind(doc)}")

    type_key = doc.get("eventTypeKey")
    if not isinstance(type_key, str):
        raise Rejected(Reason.INVALID_EVENT, "eventTypeKey is missing or not a string")
    event_type = EVENT_TYPES.get(type_key)
    if event_type is None:
        raise Rejected(Reason.UNSUPPORTED_EVENT_TYPE, f"eventTypeKey {type_key!r}")

    params = _params(doc.get("params"))
    order_id = _identifier(params, "externalOrderId")
    if order_id is None:
        raise Rejected(Reason.MISSING_REQUIRED, "externalOrderId")
    try:
        return _order_event(event_type, order_id, doc.get("keyValue"), params)
    except Rejected as rejected:
        rejected.event_type, rejected.external_order_id = event_type, order_id
        raise


def _order_event(
    event_type: EventType, order_id: str, key_value: object, params: dict[str, Any]
) -> OrderEvent:
    return OrderEvent(
        type=event_type,
        external_order_id=order_id,
        key_value=None if key_value is None else str(key_value),
        total_cost=_money(params, "totalCost"),
        status=_status(params),
        date=_date(params),
        currency=_text(params, "currency"),
        items=_items(params),
        extra={k: v for k, v in params.items() if k not in _ORDER_FIELD_SET},
        params=params,
    )


def _params(value: object) -> dict[str, Any]:
    if not isinstance(value, list):
        raise Rejected(Reason.INVALID_EVENT, "params is missing or not an array")
    params: dict[str, Any] = {}
    for index, param in enumerate(value):
        name = param.get("name") if type(param) is dict else None
        if type(name) is not str:
            raise Rejected(Reason.INVALID_EVENT, f"params[{index}] is not a {{name, value}} object")
        if name in params:
            # Two values for one name leave the order ambiguous (two totals?): refuse to guess.
            raise Rejected(Reason.INVALID_EVENT, f"param {name!r} is given twice")
        params[name] = param.get("value")
    return params


def _identifier(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Rejected(Reason.INVALID_FIELD, f"{name} must be a string, got {_kind(value)}")
    return str(value)


def _money(params: Mapping[str, Any], name: str) -> Decimal | None:
    if name not in params or params[name] is None:
        return None
    amount = codec.to_decimal(params[name])
    if amount is None or amount < 0:
        raise Rejected(Reason.INVALID_FIELD, f"{name} must be a non-negative decimal amount")
    return amount


def _status(params: Mapping[str, Any]) -> Status | None:
    value = params.get("status")
    if value is None:
        return None
    status = STATUSES.get(value) if type(value) is str else None
    if status is None:
        allowed = ", ".join(Status)
        raise Rejected(Reason.INVALID_FIELD, f"status {value!r} is not one of {allowed}")
    return status


def _date(params: Mapping[str, Any]) -> str | None:
    value = params.get("date")
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise Rejected(Reason.INVALID_FIELD, f"date {value!r} is not YYYY-MM-ddTHH:mm:ss")
    try:
        # The pattern fixed the shape; fromisoformat (C, unlike strptime) checks the calendar.
        datetime.fromisoformat(value)
    except ValueError:
        raise Rejected(Reason.INVALID_FIELD, f"date {value!r} is not a calendar date") from None
    return value


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(Reason.INVALID_FIELD, f"{name} must be a string, got {_kind(value)}")
    return value


def _items(params: Mapping[str, Any]) -> tuple[dict[str, Any], ...] | None:
    if "items" not in params or params["items"] is None:
        return None
    value = params["items"]
    if isinstance(value, str):
        # The API passes items as a JSON string; we accept the array itself too.
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise Rejected(Reason.INVALID_FIELD, "items is a string but not a JSON array") from None
    if not isinstance(value, list):
        raise Rejected(Reason.INVALID_FIELD, f"items must be an array, got {_kind(value)}")
    return tuple(_item(index, item) for index, item in enumerate(value))


def _item(index: int, item: object) -> dict[str, Any]:
    # Exact type checks (``type(x) is``) throughout: the item comes from orjson, which makes
    # only exact dicts, lists, strs, ints, floats and bools, and this runs for every item.
    if type(item) is not dict:
        raise Rejected(Reason.INVALID_ITEM, f"items[{index}] is not an object")
    for name in ITEM_FIELDS:
        value = item.get(name)
        if value is None or value == "":
            raise Rejected(Reason.INVALID_ITEM, f"items[{index}].{name} is missing")
    out = dict(item)
    for name in _ITEM_TEXT:
        kind = type(out[name])
        if kind is int:
            out[name] = str(out[name])
        elif kind is not str:
            raise Rejected(Reason.INVALID_ITEM, f"items[{index}].{name} must be a string")
    for name, value in item.items():
        if type(value) is dict or type(value) is list:
            # Nesting is kept to the second level (items array, item object): anything deeper
            # stays a serialized JSON string, as the Generate-event API does.
            out[name] = orjson.dumps(value).decode()
    quantity = codec.to_decimal(item["quantity"])
    if quantity is None or quantity <= 0:
        raise Rejected(Reason.INVALID_ITEM, f"items[{index}].quantity must be a positive number")
    cost = codec.to_decimal(item["cost"])
    if cost is None or cost < 0:
        raise Rejected(Reason.INVALID_ITEM, f"items[{index}].cost must be a non-negative amount")
    out["quantity"] = codec.decimal_str(quantity)
    out["cost"] = codec.decimal_str(cost)
    return out


def items_total(items: tuple[dict[str, Any], ...]) -> Decimal:
    return sum((Decimal(i["cost"]) * Decimal(i["quantity"]) for i in items), Decimal(0))


def _event_too_deep(doc: object, limit: int) -> bool:
    """:func:`_depth_exceeds` for a whole event, without a call per param on the common shape
    (an object whose params array holds flat name/value objects): this runs for every event."""
    if type(doc) is not dict:
        return _depth_exceeds(doc, limit)
    for key, value in doc.items():
        if key == "params" and type(value) is list:
            if limit < 2:
                return True
            for param in value:
                if type(param) is dict:
                    if limit < 3:
                        return True
                    for field in param.values():
                        if (type(field) is dict or type(field) is list) and _depth_exceeds(
                            field, limit - 3
                        ):
                            return True
                elif type(param) is list and _depth_exceeds(param, limit - 2):
                    return True
        elif (type(value) is dict or type(value) is list) and _depth_exceeds(value, limit - 1):
            return True
    return False


def _depth_exceeds(doc: object, limit: int) -> bool:
    """Whether ``doc`` nests deeper than ``limit``; recursion is bounded by ``limit`` itself."""
    if limit < 1:
        return type(doc) is dict or type(doc) is list
    if type(doc) is dict:
        children: Any = doc.values()
    elif type(doc) is list:
        children = doc
    else:
        return False
    for child in children:
        if (type(child) is dict or type(child) is list) and _depth_exceeds(child, limit - 1):
            return True
    return False


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else "null"
    )
