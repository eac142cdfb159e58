"""Dead-letter records: what the agent sends for an input the rules drop."""

from __future__ import annotations

import base64

import pytest

import topics
from processor import codec
from processor.deadletters import REASON_HEADER, dead_letter, original_value
from processor.errors import Rejected
from processor.events import parse_event
from processor.orders import Source
from processor.reasons import Reason

from .builders import NOW

DLQ_SCHEMA = topics.load_schema("schemas/orders.dlq.schema.json")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(b"o-1", b'{"eventTypeKey":"orderShipped","params":[]}', id="json"),
        pytest.param(b"\xff\x00", b"\xff\xfe not utf-8 \x80", id="not-utf8"),
        pytest.param(None, None, id="tombstone-no-key"),
        pytest.param(b"", b"", id="empty"),
    ],
)
def test_dead_letter_keeps_the_original_key_and_bytes(
    key: bytes | None, value: bytes | None
) -> None:
    letter = dead_letter(
        reason=Reason.MALFORMED_JSON,
        detail="not JSON",
        source=Source("orders.events", 2, 41),
        key=key,
        value=value,
        now=NOW,
        timestamp=1700000000.5,
    )
    assert letter.key == key
    assert letter.headers == [(REASON_HEADER, b"malformed_json")]
    # The value goes through the codec as JSON and gives the bytes back exactly.
    sent = codec.loads(codec.dumps(letter.value))
    assert original_value(sent) == value
    assert sent["keyBase64"] == (None if key is None else base64.b64encode(key).decode())
    assert sent["source"] == {
        "topic": "orders.events",
        "partition": 2,
        "offset": 41,
        "timestamp": 1700000000.5,
    }
    assert (sent["reason"], sent["detail"], sent["deadLetteredAt"]) == (
        "malformed_json",
        "not JSON",
        NOW,
    )
    assert (sent["eventTypeKey"], sent["externalOrderId"]) == (None, None)


def test_dead_letter_of_a_parsed_event_names_it() -> None:
    raw = b'{"eventTypeKey":"orderDelivered","params":[{"name":"externalOrderId","value":"o-9"}]}'
    event = parse_event(raw)
    letter = dead_letter(
        reason=Reason.UNKNOWN_ORDER,
        detail="no order 'o-9'",
        source=Source("orders.events.rekeyed", 0, 3),
        key=b"o-9",
        value=raw,
        now=NOW,
        event_type=str(event.type),
        external_order_id=event.external_order_id,
    )
    assert letter.value["eventTypeKey"] == "orderDelivered"
    assert letter.value["externalOrderId"] == "o-9"
    assert letter.value["source"]["timestamp"] is None


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_makes_a_dead_letter_the_schema_describes(reason: Reason) -> None:
    letter = dead_letter(
        reason=reason,
        detail=str(Rejected(reason, "x")),
        source=Source("t", 0, 0),
        key=b"k",
        value=b"v",
        now=NOW,
    )
    value = codec.loads(codec.dumps(letter.value))
    assert set(DLQ_SCHEMA["required"]) <= set(value)
    assert set(value) <= set(DLQ_SCHEMA["properties"])
    assert value["reason"] in DLQ_SCHEMA["properties"]["reason"]["enum"]
    assert set(DLQ_SCHEMA["properties"]["source"]["required"]) <= set(value["source"])
    assert dict(letter.headers)[REASON_HEADER].decode() == value["reason"]
