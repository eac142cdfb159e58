"""Dead-letter records. Pure: the agent sends what :func:`dead_letter` builds.

The value is JSON so anyone can read it with a console consumer; the original key and bytes ride
along in base64, since they may not be UTF-8 (or JSON) at all. The reason is also a header, so
tools can filter without parsing.
"""

from __future__ import annotations

import base64
from typing import Any

from processor.immutable import immutable
from processor.orders import Source
from processor.reasons import Reason

REASON_HEADER = "dlq.reason"


@immutable
class DeadLetter:
    key: bytes | None
    value: dict[str, Any]
    headers: list[tuple[str, bytes]]


def dead_letter(
    *,
    reason: Reason,
    detail: str,
    source: Source,
    key: bytes | None,
    value: bytes | None,
    now: str,
    timestamp: float | None = None,
    event_type: str | None = None,
    external_order_id: str | None = None,
) -> DeadLetter:
    return DeadLetter(
        key=key,
        value={
            "reason": str(reason),
            "detail": detail,
            "eventTypeKey": event_type,
            "externalOrderId": external_order_id,
            "source": {
                "topic": source.topic,
                "partition": source.partition,
                "offset": source.offset,
                "timestamp": timestamp,
            },
            "deadLetteredAt": now,
            "keyBase64": _b64(key),
            "valueBase64": _b64(value),
        },
        headers=[(REASON_HEADER, str(reason).encode())],
    )


def original_value(letter_value: dict[str, Any]) -> bytes | None:
    """The dropped record's bytes, exactly as they were read (for replay tooling and tests)."""
    encoded = letter_value.get("valueBase64")
    return None if encoded is None else base64.b64decode(encoded)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
