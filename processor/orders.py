"""The order state machine. Pure: ``apply(order, event, ...) -> Transition``, no I/O, no clock.

The agent hands in everything from the outside world (the stored order, the contact lookup's
answer, the event's source coordinates, the time) and writes back what comes out.

Idempotency: an order remembers the last offset it applied from each source partition. After a
crash the changelog can be ahead of the committed offsets, so an event may come again; it then
changes nothing, and the RFM record it produced is emitted again (consumers keep the highest
version per order, so a repeat is harmless, a loss is not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from processor import codec
from processor.contacts import Identifier, Lookup, Match, NoMatch
from processor.errors import Rejected
from processor.events import (
    REQUIRED_TO_CREATE,
    STATUSES,
    EventType,
    OrderEvent,
    Status,
    items_total,
)
from processor.immutable import immutable
from processor.reasons import Reason
from processor.settings import MismatchPolicy


class RfmOp(StrEnum):
    DELIVERED = "delivered"
    REVOKED = "revoked"


@immutable
class Source:
    """Where an event was read: its identity for idempotency and for dead letters."""

    topic: str
    partition: int
    offset: int

    @property
    def stream(self) -> str:
        return f"{self.topic}/{self.partition}"

    @property
    def event_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class Rules:
    mismatch: MismatchPolicy = MismatchPolicy.FLAG
    history_limit: int = 50


@immutable
class Order:
    external_order_id: str
    status: Status
    total_cost: Decimal
    date: str
    currency: str | None
    items: tuple[dict[str, Any], ...] | None
    extra: Mapping[str, Any]
    key_value: str | None
    contact_id: str
    matched_by: Identifier
    total_mismatch: bool
    created_at: str
    updated_at: str
    version: int
    offsets: Mapping[str, int]
    history: tuple[Mapping[str, Any], ...]

    def content(self) -> tuple[Any, ...]:
        """What an event can change; equal content means the event changed nothing."""
        return tuple(getattr(self, name) for name in CONTENT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "externalOrderId": self.external_order_id,
            "status": str(self.status),
            "totalCost": codec.decimal_str(self.total_cost),
            "date": self.date,
            "currency": self.currency,
            "items": None if self.items is None else list(self.items),
            "extra": dict(self.extra),
            "keyValue": self.key_value,
            "contactId": self.contact_id,
            "matchedBy": self.matched_by.as_dict(),
            "totalMismatch": self.total_mismatch,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "version": self.version,
            "offsets": dict(self.offsets),
            "history": list(self.history),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        items = data["items"]
        return cls(
            external_order_id=data["externalOrderId"],
            status=STATUSES[data["status"]],
            total_cost=Decimal(data["totalCost"]),
            date=data["date"],
            currency=data["currency"],
            items=None if items is None else tuple(items),
            extra=data["extra"],
            key_value=data["keyValue"],
            contact_id=data["contactId"],
            matched_by=Identifier(**data["matchedBy"]),
            total_mismatch=data["totalMismatch"],
            created_at=data["createdAt"],
            updated_at=data["updatedAt"],
            version=data["version"],
            offsets=data["offsets"],
            history=tuple(data["history"]),
        )


@immutable
class RfmRecord:
    contact_id: str
    value: dict[str, Any]


@immutable
class Transition:
    order: Order
    rfm: tuple[RfmRecord, ...] = ()
    #: False when the event changed nothing (an identical replay); the offset is still recorded.
    changed: bool = True
    #: The event was applied before (same source offset): nothing changed, outputs re-emitted.
    replay: bool = False
    #: The order was marked for a totalCost that differs from its items (policy ``flag``).
    flagged: bool = False


def apply(
    order: Order | None,
    event: OrderEvent,
    *,
    source: Source,
    now: str,
    contact: Lookup,
    rules: Rules = Rules(),
) -> Transition:
    """Apply one event to one order. Raises :class:`Rejected` when the rules drop the event."""
    if order is not None and order.offsets.get(source.stream, -1) >= source.offset:
        return _replayed(order, source)

    if event.type in (EventType.DELIVERED, EventType.CANCELLED):
        if order is None:
            raise Rejected(Reason.UNKNOWN_ORDER, f"no order {event.external_order_id!r}")
        status = Status.DELIVERED if event.type is EventType.DELIVERED else Status.CANCELLED
        content = {**_content(order), "status": status}
    elif event.type is EventType.CREATED or order is None:
        content = _created(event, contact)
    else:
        content = _updated(order, event, contact)
    content["total_mismatch"] = _mismatched(content["total_cost"], content["items"], rules.mismatch)

    offsets = {**(order.offsets if order else {}), source.stream: source.offset}
    if order is not None and content == _content(order):
        return Transition(order=replace(order, offsets=offsets), changed=False)

    # The order is built once (a frozen dataclass of 16 fields costs microseconds, and this
    # runs for every event): which RFM records the event sends is known from the content, and
    # the history entry names them, so the records are made from the order after it is built.
    version = order.version + 1 if order else 1
    history = order.history if order else ()
    ops = _rfm_ops(order, content)
    entry = {
        "type": str(event.type),
        "event": source.event_id,
        "at": now,
        "status": str(content["status"]),
        "version": version,
        "rfm": [str(op) for op in ops],
        "rfmContacts": [
            order.contact_id if op is RfmOp.REVOKED and order else content["contact_id"]
            for op in ops
        ],
    }
    new = Order(
        **content,
        created_at=order.created_at if order else now,
        updated_at=now,
        version=version,
        offsets=offsets,
        history=(*history, entry)[-rules.history_limit :],
    )
    rfm = tuple(
        # A revoke takes back the order as it was, at the new version and status.
        rfm_record(order, op, version=version, status=new.status)
        if op is RfmOp.REVOKED and order
        else rfm_record(new, op)
        for op in ops
    )
    flagged = new.total_mismatch and not (order is not None and order.total_mismatch)
    return Transition(order=new, rfm=rfm, flagged=flagged)


#: The fields an event can change; equal content means the event changed nothing.
CONTENT_FIELDS = (
    "external_order_id",
    "status",
    "total_cost",
    "date",
    "currency",
    "items",
    "extra",
    "key_value",
    "contact_id",
    "matched_by",
    "total_mismatch",
)


def _content(order: Order) -> dict[str, Any]:
    return {name: getattr(order, name) for name in CONTENT_FIELDS}


def _created(event: OrderEvent, contact: Lookup) -> dict[str, Any]:
    missing = [name for name in REQUIRED_TO_CREATE if getattr(event, _ATTR[name]) is None]
    if missing:
        raise Rejected(Reason.MISSING_REQUIRED, ", ".join(missing))
    match = _require_contact(contact)
    return {
        "external_order_id": event.external_order_id,
        "status": event.status,
        "total_cost": event.total_cost,
        "date": event.date,
        "currency": event.currency,
        "items": event.items,
        "extra": dict(event.extra),
        "key_value": event.key_value,
        "contact_id": match.contact_id,
        "matched_by": match.identifier,
    }


def _updated(order: Order, event: OrderEvent, contact: Lookup) -> dict[str, Any]:
    if isinstance(contact, NoMatch):
        _require_contact(contact)
    return {
        "external_order_id": order.external_order_id,
        "status": event.status or order.status,
        "total_cost": order.total_cost if event.total_cost is None else event.total_cost,
        "date": event.date or order.date,
        "currency": order.currency if event.currency is None else event.currency,
        "items": order.items if event.items is None else event.items,
        "extra": {**order.extra, **event.extra},
        "key_value": order.key_value if event.key_value is None else event.key_value,
        "contact_id": contact.contact_id if isinstance(contact, Match) else order.contact_id,
        "matched_by": contact.identifier if isinstance(contact, Match) else order.matched_by,
    }


_ATTR = {"totalCost": "total_cost", "status": "status", "date": "date"}


def _require_contact(contact: Lookup) -> Match:
    if contact is None:
        raise Rejected(Reason.MISSING_CONTACT, "no contact identifier in the event")
    if isinstance(contact, NoMatch):
        tried = ", ".join(f"{i.param}={i.value!r}" for i in contact.tried)
        raise Rejected(Reason.UNKNOWN_CONTACT, f"no contact matches {tried}")
    return contact


def _mismatched(
    total_cost: Decimal, items: tuple[dict[str, Any], ...] | None, policy: MismatchPolicy
) -> bool:
    # An empty items array says nothing about the amount, as no items param does.
    if policy is MismatchPolicy.IGNORE or not items:
        return False
    expected = items_total(items)
    if expected == total_cost:
        return False
    if policy is MismatchPolicy.REJECT:
        raise Rejected(
            Reason.TOTAL_MISMATCH,
            f"totalCost {total_cost} but items add up to {expected}",
        )
    return True


def _rfm_ops(before: Order | None, after: Mapping[str, Any]) -> tuple[RfmOp, ...]:
    """The RFM records an event sends, given the order before it and the content after it: a
    revoke is of the order as it was, a delivery of the order as it is now."""
    now_delivered = after["status"] is Status.DELIVERED
    if before is None or before.status is not Status.DELIVERED:
        return (RfmOp.DELIVERED,) if now_delivered else ()
    if not now_delivered or before.contact_id != after["contact_id"]:
        # The old contact's revenue must lose this order before any other contact gains it.
        return (RfmOp.REVOKED, RfmOp.DELIVERED) if now_delivered else (RfmOp.REVOKED,)
    after_values = (after["total_cost"], after["items"], after["currency"], after["date"])
    return () if _rfm_values(before) == after_values else (RfmOp.DELIVERED,)


def _rfm_values(order: Order) -> tuple[Any, ...]:
    return (order.total_cost, order.items, order.currency, order.date)


def rfm_record(
    order: Order, op: RfmOp, *, version: int | None = None, status: Status | None = None
) -> RfmRecord:
    return RfmRecord(
        contact_id=order.contact_id,
        value={
            "op": str(op),
            "externalOrderId": order.external_order_id,
            "contactId": order.contact_id,
            "totalCost": codec.decimal_str(order.total_cost),
            "currency": order.currency,
            "date": order.date,
            "items": None if order.items is None else list(order.items),
            "version": order.version if version is None else version,
            "status": str(order.status if status is None else status),
        },
    )


def _replayed(order: Order, source: Source) -> Transition:
    entry = next((h for h in order.history if h.get("event") == source.event_id), None)
    if entry is None or not entry.get("rfm"):
        return Transition(order=order, changed=False, replay=True)
    # The crash behind a replay may have lost any record the event sent, the revoke of a contact
    # the order moved away from as much as the current contact's: send each again, as of now.
    moved_from = dict.fromkeys(c for c in entry.get("rfmContacts", ()) if c != order.contact_id)
    revoked = tuple(rfm_record(replace(order, contact_id=c), RfmOp.REVOKED) for c in moved_from)
    op = RfmOp.DELIVERED if order.status is Status.DELIVERED else RfmOp.REVOKED
    rfm = (*revoked, rfm_record(order, op))
    return Transition(order=order, rfm=rfm, changed=False, replay=True)
