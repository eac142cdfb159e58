"""Small builders shared by the unit tests: raw Generate events, parsed events, contacts."""

from __future__ import annotations

from typing import Any

import orjson

from processor.contacts import Identifier, Match, NoMatch
from processor.events import OrderEvent, parse_event
from processor.orders import Source

TOPIC = "orders.events"
NOW = "2024-03-01T12:00:00.000+00:00"

#: The example event of the Generate-event order spec, exactly as the seed gives it.
SEED_EXAMPLE = b"""{
    "eventTypeKey": "orderCreated",
    "keyValue": "380501234567",
    "params": [{
        "name": "phone",
        "value": "380501234567"
    }, {
        "name": "externalOrderId",
        "value": "12345679"
    }, {
        "name": "externalCustomerId",
        "value": "AV13760"
    }, {
        "name": "totalCost",
        "value": "258.0"
    }, {
        "name": "status",
        "value": "INITIALIZED"
    }, {
        "name": "date",
        "value": "2020-05-14T10:11:00"
    }, {
        "name": "currency",
        "value": "UAH"
    }, {
        "name": "items",
        "value": [{
            "externalItemId": "200600",
            "name": "Super Device",
            "category": "devices",
            "quantity": 1,
            "cost": 990,
            "url": "http://example.com/item/200600",
            "imageUrl": "http://example.com/item/200600/image.png",
            "description": "High quality"
        }]
    }]
}"""


def item(**overrides: Any) -> dict[str, Any]:
    """A valid item; a value of None in ``overrides`` removes that field."""
    base: dict[str, Any] = {
        "externalItemId": "sku-1",
        "name": "Thing",
        "quantity": 1,
        "cost": "10.00",
        "url": "http://example.com/sku-1",
        "imageUrl": "http://example.com/sku-1.png",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def raw_event(event_type: str = "orderCreated", /, key_value: Any = None, **params: Any) -> bytes:
    """A Generate event as bytes; every keyword becomes one {name, value} param, in order."""
    doc: dict[str, Any] = {
        "eventTypeKey": event_type,
        "params": [{"name": name, "value": value} for name, value in params.items()],
    }
    if key_value is not None:
        doc["keyValue"] = key_value
    return orjson.dumps(doc)


def full_params(**overrides: Any) -> dict[str, Any]:
    """The params of a complete orderCreated; a value of None in ``overrides`` drops the param."""
    params: dict[str, Any] = {
        "externalOrderId": "o-1",
        "totalCost": "10.00",
        "status": "INITIALIZED",
        "date": "2024-01-02T03:04:05",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def event(event_type: str = "orderCreated", /, **params: Any) -> OrderEvent:
    """A parsed event; ``externalOrderId`` defaults to o-1, nothing else is filled in."""
    params.setdefault("externalOrderId", "o-1")
    return parse_event(raw_event(event_type, **params))


def created(**overrides: Any) -> OrderEvent:
    return parse_event(raw_event("orderCreated", **full_params(**overrides)))


def match(contact_id: str, field: str = "externalCustomerId") -> Match:
    return Match(contact_id, Identifier(param=field, field=field, value=f"{contact_id}-ext"))


def no_match(value: str = "nobody@example.com") -> NoMatch:
    return NoMatch((Identifier(param="email", field="email", value=value),))


def source(offset: int, partition: int = 0, topic: str = TOPIC) -> Source:
    return Source(topic, partition, offset)
