"""The topic contract's schemas name the same codes as the code."""

from __future__ import annotations

import topics
from processor.events import EventType, Status
from processor.orders import RfmOp
from processor.reasons import Reason


def test_dead_letter_schema_lists_every_reason() -> None:
    schema = topics.load_schema("schemas/orders.dlq.schema.json")
    assert set(schema["properties"]["reason"]["enum"]) == {r.value for r in Reason}


def test_rfm_schema_ops() -> None:
    schema = topics.load_schema("schemas/orders.rfm.schema.json")
    assert set(schema["properties"]["op"]["enum"]) == {op.value for op in RfmOp}


def test_event_schema_types_and_statuses() -> None:
    schema = topics.load_schema("schemas/orders.events.schema.json")
    assert set(schema["properties"]["eventTypeKey"]["enum"]) == {t.value for t in EventType}
    statuses = schema["$defs"]["knownParams"]["status"]["enum"]
    assert set(statuses) == {s.value for s in Status}
