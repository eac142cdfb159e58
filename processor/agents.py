"""The agents: thin wiring between topics, the orders table, Redis and the pure functions.

Every record is read as raw bytes and parsed here, so that nothing can make an agent raise:
Faust acks a message whose agent raised, which would lose it silently. Whatever the rules drop,
and whatever our own code fails on, becomes a dead letter.

Order events are taken in batches (``stream.take_events``): one Redis round trip for the whole
batch, then each event is applied in order with no await in between, and every output goes to
Faust's producer buffer (``send_soon``). Faust acks a batch only after this code is done with it
and flushes the producer before it commits an offset, so no output can be lost behind a commit.

Each agent runs at concurrency 1: with more, Faust can commit an offset past an event that is
still in flight (faust-streaming #606).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faust.streams import _current_event

from processor import codec, contacts
from processor.app import Processor
from processor.contacts import Identifier, Lookup
from processor.deadletters import dead_letter
from processor.directory import retrying
from processor.errors import Rejected
from processor.events import EventType, Limits, OrderEvent, parse_event
from processor.orders import Order, Rules, Source, apply
from processor.reasons import Reason
from processor.routing import partition_for

log = logging.getLogger(__name__)

AGENT_CONCURRENCY = 1
EXIT_STATE_LOST = 70  # EX_SOFTWARE
REKEY_HEADER = "rekeyed-from"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@contextmanager
def as_current(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event while we touch the table for it.

    The table writes its changelog record, and the RocksDB store picks its partition database,
    from the current event's partition. Within a batch that must be each event in turn.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@dataclass(slots=True)
class Incoming:
    """One record of a batch, parsed, with what is to be done with it."""

    message: Any
    source: Source
    event: OrderEvent | None = None
    rejected: Rejected | None = None
    rekey_to: int | None = None
    identifiers: tuple[Identifier, ...] = ()


class Pipeline:
    """Records in, state and outputs out; the agents only feed it."""

    def __init__(self, processor: Processor, clock: Callable[[], str] = utc_now) -> None:
        self.p = processor
        settings = processor.settings
        self.clock = clock
        self.limits = Limits(max_bytes=settings.max_event_bytes, max_depth=settings.max_depth)
        self.rules = Rules(mismatch=settings.total_mismatch, history_limit=settings.history_limit)
        self.id_order = contacts.identification_order(settings.contact_id_params)
        self.metrics = processor.metrics
        self.buffer_limit = settings.batch_size * 4

    async def on_order_batch(self, events: Sequence[Any], *, may_rekey: bool) -> None:
        incoming = [self._parse(event.message, may_rekey=may_rekey) for event in events]
        lookups = await self._lookup_all(incoming)
        # An order touched several times in one batch is written to the table (RocksDB and
        # changelog) once, with its last state: each write costs far more than an apply.
        dirty: dict[bytes, tuple[Any, Order]] = {}
        for event, item, lookup in zip(events, incoming, lookups, strict=True):
            with as_current(event):
                self._handle(item, lookup, event, dirty)
        for key, (event, order) in dirty.items():
            with as_current(event):
                try:
                    self.p.orders[key] = order.to_dict()
                except Exception:
                    # Nothing of ours should get here. If it does, exit at once: a raise would
                    # let Faust ack (and commit) events whose state was never kept, an exit
                    # leaves them uncommitted, to be consumed again after the restart.
                    log.critical("Cannot write order %r; exiting", key, exc_info=True)
                    os._exit(EXIT_STATE_LOST)
        # Bounded memory: let the producer buffer drain before taking the next batch. Faust's
        # own bound (100 messages) is below one batch's output and stalls every batch.
        buffer = self.p.app.producer.buffer
        buffer.max_messages = self.buffer_limit
        await buffer.wait_until_ebb()

    def _parse(self, message: Any, *, may_rekey: bool) -> Incoming:
        item = Incoming(message, Source(message.topic, message.partition, message.offset))
        try:
            event = item.event = parse_event(message.value, self.limits)
            owner = partition_for(event.external_order_id.encode(), self.p.settings.partitions)
            if may_rekey and owner != message.partition:
                item.rekey_to = owner  # counted by the agent that applies it
                return item
            self.metrics.events[event.type] += 1
            if event.type in (EventType.CREATED, EventType.UPDATED):
                # orderDelivered / orderCancelled need no lookup: the order knows its contact.
                item.identifiers = contacts.identifiers(event.params, self.id_order)
        except Rejected as rejected:
            item.rejected = rejected
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not lose the event
            item.rejected = self._bug(exc, item)
        return item

    async def _lookup_all(self, incoming: Sequence[Incoming]) -> list[Lookup]:
        batch = [item.identifiers for item in incoming]
        if not any(batch):
            return [None] * len(batch)
        try:
            return await retrying(
                lambda: self.p.directory.resolve_many(batch),
                what="contact lookup",
                on_wait=self._redis_wait,
            )
        except Exception as exc:  # noqa: BLE001
            for item in incoming:
                if item.identifiers:
                    item.rejected = self._bug(exc, item)
            return [None] * len(batch)

    def _handle(
        self,
        item: Incoming,
        lookup: Lookup,
        faust_event: Any,
        dirty: dict[bytes, tuple[Any, Order]],
    ) -> None:
        try:
            if item.rejected is not None:
                raise item.rejected
            if item.rekey_to is not None:
                self._rekey(item)
                return
            assert item.event is not None
            self._apply(item.event, item.source, lookup, faust_event, dirty)
        except Rejected as rejected:
            self._dead_letter(rejected, item)
        except Exception as exc:  # noqa: BLE001
            self._dead_letter(self._bug(exc, item), item)

    def _apply(
        self,
        event: OrderEvent,
        source: Source,
        lookup: Lookup,
        faust_event: Any,
        dirty: dict[bytes, tuple[Any, Order]],
    ) -> None:
        key = event.external_order_id.encode()
        if key in dirty:
            order: Order | None = dirty[key][1]
        else:
            stored = self.p.orders.get(key)
            order = None if stored is None else Order.from_dict(stored)
        transition = apply(
            order, event, source=source, now=self.clock(), contact=lookup, rules=self.rules
        )
        # A replay is written again too: the kill behind it may have come after the local RocksDB
        # write but before the changelog record left the producer, and only a write sends it.
        dirty[key] = (faust_event, transition.order)
        if transition.replay:
            self.metrics.replays += 1
        else:
            if transition.changed:
                self.metrics.applied += 1
            else:
                self.metrics.unchanged += 1
        if transition.flagged:
            self.metrics.flagged_total_mismatch += 1
            log.warning("Order %s: totalCost differs from its items (flagged)", key.decode())
        for record in transition.rfm:
            self.p.topics.rfm.send_soon(key=record.contact_id.encode(), value=record.value)
            self.metrics.rfm_records[record.value["op"]] += 1

    def _rekey(self, item: Incoming) -> None:
        assert item.event is not None and item.rekey_to is not None
        self.metrics.rekeyed += 1
        self.p.topics.rekeyed.send_soon(
            key=item.event.external_order_id.encode(),
            value=item.message.value,
            partition=item.rekey_to,
            headers=[(REKEY_HEADER, item.source.event_id.encode())],
        )

    def _redis_wait(self) -> None:
        self.metrics.redis_waits += 1

    def _bug(self, exc: Exception, item: Incoming) -> Rejected:
        log.exception("Failed on %s; dead-lettering it", item.source.event_id, exc_info=exc)
        rejected = Rejected(Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
        if item.event is not None:
            rejected.event_type = item.event.type
            rejected.external_order_id = item.event.external_order_id
        return rejected

    async def on_contact(self, message: Any) -> None:
        item = Incoming(message, Source(message.topic, message.partition, message.offset))
        try:
            if message.value is None:
                if not message.key:
                    raise Rejected(Reason.INVALID_CONTACT, "a tombstone without a key")
                contact_id = message.key.decode()
                await retrying(
                    lambda: self.p.directory.delete(contact_id),
                    what="contact delete",
                    on_wait=self._redis_wait,
                )
                self.metrics.contacts_deleted += 1
                return
            try:
                record = codec.loads(message.value)
            except ValueError as exc:
                raise Rejected(Reason.MALFORMED_JSON, f"not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise Rejected(Reason.INVALID_CONTACT, "a contact must be a JSON object")
            contact = contacts.parse_contact(record)
            await retrying(
                lambda: self.p.directory.upsert(contact),
                what="contact import",
                on_wait=self._redis_wait,
            )
            self.metrics.contacts_upserted += 1
        except Rejected as rejected:
            self._dead_letter(rejected, item)
        except Exception as exc:  # noqa: BLE001
            self._dead_letter(self._bug(exc, item), item)

    def _dead_letter(self, rejected: Rejected, item: Incoming) -> None:
        message = item.message
        self.metrics.dead_letters[rejected.reason] += 1
        event = item.event
        letter = dead_letter(
            reason=rejected.reason,
            detail=rejected.detail,
            source=item.source,
            key=message.key,
            value=message.value,
            now=self.clock(),
            timestamp=message.timestamp,
            event_type=str(event.type) if event else rejected.event_type,
            external_order_id=event.external_order_id if event else rejected.external_order_id,
        )
        # DEBUG: a bad producer can send thousands a second; the counters and the DLQ tell it.
        log.debug(
            "Dead letter %s at %s: %s", rejected.reason, item.source.event_id, rejected.detail
        )
        self.p.topics.dlq.send_soon(key=letter.key, value=letter.value, headers=letter.headers)


def register(processor: Processor) -> Pipeline:
    app = processor.app
    settings = processor.settings
    pipeline = Pipeline(processor)
    batch, within = settings.batch_size, settings.batch_wait_ms / 1000

    @app.agent(processor.topics.events, name="orders", concurrency=AGENT_CONCURRENCY)
    async def orders(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within):
            await pipeline.on_order_batch(events, may_rekey=True)

    @app.agent(processor.topics.rekeyed, name="orders-rekeyed", concurrency=AGENT_CONCURRENCY)
    async def orders_rekeyed(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within):
            await pipeline.on_order_batch(events, may_rekey=False)

    @app.agent(processor.topics.contacts, name="contacts", concurrency=AGENT_CONCURRENCY)
    async def contacts_import(stream: Any) -> None:
        async for event in stream.events():
            await pipeline.on_contact(event.message)

    return pipeline
