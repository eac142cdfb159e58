"""Deterministic load: contacts for the directory and Generate events for orders.events.

Everything comes from one seeded ``random.Random``, so the same arguments give byte-identical
records run after run (and results from two runs compare like for like).

The backlog is a stream of order lifecycles interleaved the way a real shop's traffic is:
a window of orders is "open" at once and each record advances one of them by a step, so the
steps of one order are always in a valid order (created, then updates, then delivered or
cancelled) while orders overlap. About ``bad_ratio`` of the records are bad on purpose, each of
a kind the processor has to dead-letter.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from processor.contacts import Contact

T = TypeVar("T")
DEFAULT_SEED = 20240301
EVENT_BYTES = 1024

# Why these kinds: they are the common ways producers get it wrong, and each takes a different
# path through the worker (parse error, validation error, a Redis miss, a table miss).
BAD_KINDS = ("malformed_json", "missing_required", "missing_contact", "unknown_contact")
BAD_UNKNOWN_ORDER = "unknown_order"

# Words for names and free text; split once at import.
_TEXT = (
    "fast delivery gift wrap fragile handle with care leave at the door call before "
    "arrival eco packaging loyalty bonus applied weekend slot promo spring sale back "
    "order split shipment contactless courier pickup point insured express standard "
    "economy invoice attached customer note please ring twice office hours only"
)
_WORDS = tuple(_TEXT.split())
_CURRENCIES = ("UAH", "EUR", "USD", "PLN")
_CATEGORIES = ("devices", "books", "garden", "kitchen", "toys", "sports", "beauty")
_CHANNELS = ("web", "ios", "android", "pos", "call-center")
_EMAIL_PARAMS = ("email", "Email", "EMAIL", "EmailAddress", "UserEmail", "ContactEmail")
_PHONE_PARAMS = ("phone", "Phone", "PhoneNumber", "SMS")
# An empty-valued param costs this many bytes in the JSON array: ,{"name":"description","value":""}
_PAD_OVERHEAD = len(b',{"name":"description","value":""}')


def contact(index: int) -> Contact:
    """Contact number ``index``: the same identifiers for the directory and for the events."""
    return Contact(
        id=f"c{index:07d}",
        identifiers={
            "externalCustomerId": f"EXT-{index:07d}",
            "email": f"customer{index}@shop{index % 7}.example",
            "phone": f"+380{index:09d}",
        },
    )


def contacts(count: int) -> Iterator[Contact]:
    return (contact(i) for i in range(count))


@dataclass
class Record:
    """One record to produce: the key, the bytes, and what kind of event it is."""

    key: bytes
    value: bytes
    kind: str


@dataclass
class LoadStats:
    """What a generator produced, so results can be checked against expectations."""

    records: int = 0
    bytes: int = 0
    orders: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, record: Record) -> None:
        self.records += 1
        self.bytes += len(record.value)
        self.kinds[record.kind] += 1

    @property
    def bad(self) -> int:
        return sum(self.kinds[k] for k in (*BAD_KINDS, BAD_UNKNOWN_ORDER))

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "bytes": self.bytes,
            "averageBytes": round(self.bytes / self.records, 1) if self.records else 0,
            "orders": self.orders,
            "bad": self.bad,
            "kinds": dict(sorted(self.kinds.items())),
        }


class _Rng:
    """The few draws we need, on ``random()`` only: randint and choice cost several Python
    calls each, and a million events draw some thirty numbers apiece."""

    def __init__(self, rng: random.Random) -> None:
        self.random = rng.random

    def int(self, low: int, high: int) -> int:
        """Like randint: low <= n <= high."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]


class EventFactory:
    """Builds single Generate events (as bytes) from a seeded RNG."""

    def __init__(self, rng: random.Random, contact_count: int, event_bytes: int = EVENT_BYTES):
        self.rng = _Rng(rng)
        self.contact_count = contact_count
        self.event_bytes = event_bytes
        # One long deterministic text; padding is a slice of it, so no per-event word picking.
        self._filler = " ".join(self.rng.pick(_WORDS) for _ in range(2000))

    # -- valid events ---------------------------------------------------------------------

    def created(self, order_id: str, *, status: str = "INITIALIZED") -> bytes:
        total, items = self._items()
        params: list[tuple[str, Any]] = [
            ("externalOrderId", order_id),
            *self._contact_params(),
            ("totalCost", total),
            ("status", status),
            ("date", self._date()),
            ("currency", self.rng.pick(_CURRENCIES)),
            # The API sends items as a JSON string; the processor accepts the array too.
            ("items", items if self.rng.random() < 0.5 else orjson.dumps(items).decode()),
            ("channel", self.rng.pick(_CHANNELS)),
        ]
        return self._event("orderCreated", params)

    def updated(self, order_id: str) -> bytes:
        params: list[tuple[str, Any]] = [("externalOrderId", order_id)]
        roll = self.rng.random()
        if roll < 0.4:
            params.append(("status", "IN_PROGRESS"))
        elif roll < 0.7:
            # A changed basket: items and totalCost change together, so they still agree.
            total, items = self._items()
            params += [("totalCost", total), ("items", items)]
        else:
            params.append(("deliverySlot", f"{self.rng.int(8, 20)}:00"))
        if self.rng.random() < 0.5:
            params += self._contact_params()
        return self._event("orderUpdated", params)

    def delivered(self, order_id: str) -> bytes:
        return self._event("orderDelivered", [("externalOrderId", order_id)])

    def cancelled(self, order_id: str) -> bytes:
        params = [("externalOrderId", order_id), ("cancelReason", self.rng.pick(_WORDS))]
        return self._event("orderCancelled", params)

    # -- bad events -----------------------------------------------------------------------

    def bad(self, kind: str, order_id: str) -> bytes:
        if kind == "malformed_json":
            good = self.created(order_id)
            return good[: self.rng.int(10, len(good) - 10)]  # cut short, as by a bad client
        if kind == "missing_required":
            dropped = self.rng.pick(("totalCost", "status", "date"))
            doc = orjson.loads(self.created(order_id))
            doc["params"] = [p for p in doc["params"] if p["name"] != dropped]
            return orjson.dumps(doc)
        if kind == "missing_contact":
            return self._event(
                "orderCreated",
                [
                    ("externalOrderId", order_id),
                    ("totalCost", "10.00"),
                    ("status", "INITIALIZED"),
                    ("date", self._date()),
                ],
            )
        if kind == "unknown_contact":
            stranger = f"Nobody.{order_id}@Nowhere.example"
            return self._event(
                "orderCreated",
                [
                    ("externalOrderId", order_id),
                    ("Email", stranger),
                    ("totalCost", "10.00"),
                    ("status", "INITIALIZED"),
                    ("date", self._date()),
                ],
            )
        if kind == BAD_UNKNOWN_ORDER:
            return self.delivered(order_id)
        raise ValueError(f"unknown bad kind {kind!r}")

    # -- parts ------------------------------------------------------------------------------

    def _contact_params(self) -> list[tuple[str, Any]]:
        # Skewed towards low indexes: a few customers order a lot, most order rarely.
        c = contact(int(self.contact_count * self.rng.random() ** 2))
        ids = c.identifiers
        roll = self.rng.random()
        if roll < 0.4:
            return [("externalCustomerId", ids["externalCustomerId"])]
        if roll < 0.75:
            # Email values match case-insensitively, so send them as people type them.
            email = "".join(ch.upper() if self.rng.random() < 0.3 else ch for ch in ids["email"])
            return [(self.rng.pick(_EMAIL_PARAMS), email)]
        return [(self.rng.pick(_PHONE_PARAMS), ids["phone"])]

    def _items(self) -> tuple[str, list[dict[str, Any]]]:
        items: list[dict[str, Any]] = []
        total_cents = 0
        for _ in range(self.rng.int(1, 4)):
            sku = self.rng.int(100_000, 999_999)
            cents = self.rng.int(99, 49_999)
            quantity = self.rng.int(1, 3)
            total_cents += cents * quantity
            items.append(
                {
                    "externalItemId": str(sku),
                    "name": f"{self.rng.pick(_WORDS).title()} {self.rng.pick(_WORDS)}",
                    "category": self.rng.pick(_CATEGORIES),
                    "quantity": quantity,
                    # A JSON number with two decimals; the processor reads it back exactly.
                    "cost": cents / 100,
                    "url": f"http://shop.example/item/{sku}",
                    "imageUrl": f"http://shop.example/item/{sku}/image.png",
                }
            )
        return f"{total_cents // 100}.{total_cents % 100:02d}", items

    def _date(self) -> str:
        r = self.rng
        return (
            f"2024-{r.int(1, 12):02d}-{r.int(1, 28):02d}"
            f"T{r.int(0, 23):02d}:{r.int(0, 59):02d}:{r.int(0, 59):02d}"
        )

    def _event(self, kind: str, params: list[tuple[str, Any]]) -> bytes:
        doc: dict[str, Any] = {
            "eventTypeKey": kind,
            "params": [{"name": n, "value": v} for n, v in params],
        }
        raw = orjson.dumps(doc)
        room = self.event_bytes - len(raw) - _PAD_OVERHEAD
        if room <= 0:
            return raw
        # Free text up to the target size: real events carry descriptions and custom params.
        start = self.rng.int(0, len(self._filler) - room - 1) if room < len(self._filler) else 0
        doc["params"].append({"name": "description", "value": self._filler[start : start + room]})
        return orjson.dumps(doc)


@dataclass
class _OpenOrder:
    order_id: str
    steps: list[str]  # event kinds still to send, next first


def _lifecycle(rng: _Rng) -> list[str]:
    steps = ["orderCreated"]
    updates = rng.random()
    steps += ["orderUpdated"] * (0 if updates < 0.45 else 1 if updates < 0.85 else 2)
    end = rng.random()
    if end < 0.65:
        steps.append("orderDelivered")
    elif end < 0.80:
        steps.append("orderCancelled")
    # else: the order stays open (abandoned, or still in progress)
    return steps


def backlog(
    events: int,
    contact_count: int,
    *,
    seed: int = DEFAULT_SEED,
    bad_ratio: float = 0.05,
    event_bytes: int = EVENT_BYTES,
    stats: LoadStats | None = None,
) -> Iterator[Record]:
    """``events`` records for orders.events, keyed by externalOrderId.

    ``stats`` (when given) is filled in as records are generated, so a caller streaming the
    records to Kafka can report what was sent without holding a million records in memory.
    """
    factory = EventFactory(random.Random(seed), contact_count, event_bytes)
    rng = factory.rng
    stats = stats if stats is not None else LoadStats()
    # Open orders at once: enough that one order's steps are far apart in the stream.
    window = max(10, min(2000, events // 20))
    open_orders: list[_OpenOrder] = []
    bad_count = 0
    while stats.records < events:
        if rng.random() < bad_ratio:
            bad_count += 1
            kind = rng.pick((*BAD_KINDS, BAD_UNKNOWN_ORDER))
            order_id = f"bad-{bad_count:08d}"
            record = Record(order_id.encode(), factory.bad(kind, order_id), kind)
        else:
            while len(open_orders) < window:
                stats.orders += 1
                order_id = f"ord-{stats.orders:08d}"
                open_orders.append(_OpenOrder(order_id, _lifecycle(rng)))
            index = int(rng.random() * len(open_orders))
            order = open_orders[index]
            kind = order.steps.pop(0)
            record = Record(order.order_id.encode(), _build(factory, kind, order.order_id), kind)
            if not order.steps:
                # Swap-remove: O(1), and the order of open_orders does not matter.
                open_orders[index] = open_orders[-1]
                open_orders.pop()
        stats.add(record)
        yield record
    # Orders opened but never sent (their created event did not fit) are not orders.
    stats.orders -= sum(1 for o in open_orders if o.steps and o.steps[0] == "orderCreated")


def _build(factory: EventFactory, kind: str, order_id: str) -> bytes:
    if kind == "orderCreated":
        return factory.created(order_id)
    if kind == "orderUpdated":
        return factory.updated(order_id)
    if kind == "orderDelivered":
        return factory.delivered(order_id)
    return factory.cancelled(order_id)


@dataclass
class Probe:
    """A record of the latency load, and the output that marks it done (None: not measured)."""

    record: Record
    #: ("rfm", externalOrderId) for a delivered order, ("dlq", key) for a bad event.
    expect: tuple[str, str] | None


def latency_load(
    count: int,
    contact_count: int,
    *,
    tag: str,
    seed: int = DEFAULT_SEED,
    bad_ratio: float = 0.05,
    event_bytes: int = EVENT_BYTES,
) -> list[Probe]:
    """``count`` records for the latency phase: created+delivered pairs for fresh orders (the
    delivered one yields an orders.rfm record) and some bad events (each yields a dead letter).
    Order ids carry ``tag`` so each load level has orders of its own."""
    factory = EventFactory(random.Random(f"{seed}-{tag}"), contact_count, event_bytes)
    rng = factory.rng
    probes: list[Probe] = []
    n = 0
    while len(probes) < count:
        n += 1
        if rng.random() < bad_ratio:
            kind = rng.pick(("malformed_json", BAD_UNKNOWN_ORDER))
            bad_id = f"{tag}-bad-{n:07d}"
            record = Record(bad_id.encode(), factory.bad(kind, bad_id), kind)
            probes.append(Probe(record, ("dlq", bad_id)))
            continue
        order_id = f"{tag}-ord-{n:07d}"
        key = order_id.encode()
        probes.append(Probe(Record(key, factory.created(order_id), "orderCreated"), None))
        delivered = Record(key, factory.delivered(order_id), "orderDelivered")
        probes.append(Probe(delivered, ("rfm", order_id)))
    return probes  # count, or count + 1 when the last pair straddles it
