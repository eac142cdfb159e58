"""The agents: thin wiring between topics, the orders table, Redis and the pure functions.

Every record is read as raw bytes and parsed here, so that nothing can make an agent raise:
Faust acks a message whose agent raised, which would lose it silently. Whatever the rules drop,
and whatever our own code fails on, becomes a dead letter.

Order events are taken in batches (:meth:`processor.streams.Stream.batches`), and each batch
costs a fixed number of round trips whatever its size: one Redis lookup for its contacts, one
table read and one table write per partition (:mod:`processor.table`), and one publish of all
its outputs and changelog records (:mod:`processor.outbox`). In between, each event is applied
in order with no await. A batch is acked only once it is done, and Faust commits offsets only
after flushing the producer, so no commit can get ahead of an output. What cannot be kept (the
table unwritable, Kafka refusing records past the producer's retries) ends the process at once
(:data:`EXIT_STATE_LOST`): its events stay uncommitted and are consumed again after the restart.

Each agent runs at concurrency 1: with more, Faust can commit an offset past an event that is
still in flight (faust-streaming #606).
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from processor import codec, contacts
from processor.app import Processor
from processor.contacts import Identifier, Lookup
from processor.deadletters import dead_letter
from processor.directory import retrying
from processor.errors import Rejected
from processor.events import EventType, Limits, OrderEvent, parse_event
from processor.orders import Order, Rules, Source, apply
from processor.outbox import Outbox
from processor.reasons import Reason
from processor.routing import partition_for
from processor.table import OrdersTable, Stored

log = logging.getLogger(__name__)

AGENT_CONCURRENCY = 1
EXIT_STATE_LOST = 70  # EX_SOFTWARE
REKEY_HEADER = "rekeyed-from"
SLOW_BATCH_SECONDS = 0.5

#: (table partition, order key)
Slot = tuple[int, bytes]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _exit_state_lost(what: str, exc: BaseException | None = None) -> NoReturn:
    # A raise would let Faust ack (and commit) events whose state or outputs were never kept;
    # an exit leaves them uncommitted, to be consumed again after the restart.
    log.critical("%s; exiting", what, exc_info=exc or True)
    os._exit(EXIT_STATE_LOST)


def _delivery_failed(exc: BaseException) -> None:
    _exit_state_lost("Kafka did not take a batch of records", exc)


@dataclass(slots=True)
class BatchOrders:
    """The orders one batch touches: read once, applied in memory, written once.

    An order touched several times in a batch is written with its last state only: each write
    (RocksDB, changelog record) costs more than an apply.
    """

    stored: dict[Slot, Stored] = field(default_factory=dict)
    current: dict[Slot, Order | None] = field(default_factory=dict)
    dirty: dict[Slot, None] = field(default_factory=dict)

    def get(self, slot: Slot) -> Order | None:
        if slot not in self.current:
            data = OrdersTable.decode(self.stored.get(slot))
            self.current[slot] = None if data is None else Order.from_dict(data)
        return self.current[slot]

    def set(self, slot: Slot, order: Order) -> None:
        self.current[slot] = order
        self.dirty[slot] = None

    def changed(self) -> dict[int, dict[bytes, dict[str, Any]]]:
        by_partition: dict[int, dict[bytes, dict[str, Any]]] = defaultdict(dict)
        for partition, key in self.dirty:
            order = self.current[(partition, key)]
            assert order is not None
            by_partition[partition][key] = order.to_dict()
        return by_partition


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
        self.table = OrdersTable(processor.orders)
        self.rfm_topic = processor.topics.rfm.get_topic_name()
        self.dlq_topic = processor.topics.dlq.get_topic_name()
        self.rekeyed_topic = processor.topics.rekeyed.get_topic_name()

    async def on_order_batch(self, events: Sequence[Any], *, may_rekey: bool) -> None:
        started = time.perf_counter()
        outbox = Outbox()
        incoming = [self._parse(event.message, may_rekey=may_rekey) for event in events]
        before_redis = time.perf_counter()
        lookups = await self._lookup_all(incoming)
        redis = time.perf_counter() - before_redis
        batch = self._read(incoming)
        # One time for the whole batch: its events are applied within milliseconds of each
        # other, and reading the clock per event cost 2% of the worker.
        now = self.clock()
        for item, lookup in zip(incoming, lookups, strict=True):
            self._handle(item, lookup, batch, outbox, now)
        try:
            for partition, values in batch.changed().items():
                self.table.put_many(partition, values, outbox)
        except Exception:  # noqa: BLE001 - logged with its traceback, then the process exits
            _exit_state_lost("Cannot write the orders table")
        before_kafka = time.perf_counter()
        await self._publish(outbox)
        done = time.perf_counter()
        self.metrics.batch_done(done - started)
        if done - started > SLOW_BATCH_SECONDS:
            # Every event of the batch waited this long: say where the time went.
            log.warning(
                "A batch of %d events took %.0f ms (Redis %.0f ms, handing to Kafka %.0f ms)",
                len(events),
                (done - started) * 1000,
                redis * 1000,
                (done - before_kafka) * 1000,
            )

    def _read(self, incoming: Sequence[Incoming]) -> BatchOrders:
        wanted: dict[int, dict[bytes, None]] = defaultdict(dict)
        for item in incoming:
            if item.event is not None and item.rejected is None and item.rekey_to is None:
                wanted[item.source.partition][item.event.external_order_id.encode()] = None
        batch = BatchOrders()
        try:
            for partition, keys in wanted.items():
                stored = self.table.get_many(partition, list(keys))
                batch.stored.update(zip(((partition, k) for k in keys), stored, strict=True))
        except Exception:  # noqa: BLE001 - logged with its traceback, then the process exits
            _exit_state_lost("Cannot read the orders table")
        return batch

    async def _publish(self, outbox: Outbox) -> None:
        # Faust commits an acked event's offset only after flushing the producer, so every output
        # and changelog record of a batch is on the broker before any of its events is committed.
        # A record Kafka refuses past the producer's retries ends the process before that flush.
        try:
            await self.p.publisher.publish(outbox, on_failure=_delivery_failed)
        except Exception:  # noqa: BLE001 - logged with its traceback, then the process exits
            _exit_state_lost(f"Cannot hand {len(outbox)} records to the Kafka producer")

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
            item.rejected = rejected.detached()
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
        self, item: Incoming, lookup: Lookup, batch: BatchOrders, outbox: Outbox, now: str
    ) -> None:
        if item.rejected is not None:
            # Not raised: that would give it a traceback again (see Rejected.detached).
            self._dead_letter(item.rejected, item, outbox, now)
            return
        try:
            if item.rekey_to is not None:
                self._rekey(item, outbox)
                return
            assert item.event is not None
            self._apply(item.event, item.source, lookup, batch, outbox, now)
        except Rejected as rejected:
            self._dead_letter(rejected, item, outbox, now)
        except Exception as exc:  # noqa: BLE001
            self._dead_letter(self._bug(exc, item), item, outbox, now)

    def _apply(
        self,
        event: OrderEvent,
        source: Source,
        lookup: Lookup,
        batch: BatchOrders,
        outbox: Outbox,
        now: str,
    ) -> None:
        # The table partition is the event's: the agent re-keys any event that is not on the
        # partition owning its order before it gets here.
        slot = (source.partition, event.external_order_id.encode())
        order = batch.get(slot)
        transition = apply(order, event, source=source, now=now, contact=lookup, rules=self.rules)
        # A replay is written again too: the kill behind it may have come after the local RocksDB
        # write but before the changelog record left the producer, and only a write sends it.
        batch.set(slot, transition.order)
        if transition.replay:
            self.metrics.replays += 1
        else:
            if transition.changed:
                self.metrics.applied += 1
            else:
                self.metrics.unchanged += 1
        if transition.flagged:
            self.metrics.flagged_total_mismatch += 1
            log.warning("Order %s: totalCost differs from its items (flagged)", slot[1].decode())
        for record in transition.rfm:
            outbox.add(self.rfm_topic, record.contact_id.encode(), codec.dumps(record.value))
            self.metrics.rfm_records[record.value["op"]] += 1

    def _rekey(self, item: Incoming, outbox: Outbox) -> None:
        assert item.event is not None and item.rekey_to is not None
        self.metrics.rekeyed += 1
        outbox.add(
            self.rekeyed_topic,
            item.event.external_order_id.encode(),
            item.message.value,
            partition=item.rekey_to,
            headers=((REKEY_HEADER, item.source.event_id.encode()),),
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
        outbox = Outbox()
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
            self._dead_letter(rejected, item, outbox, self.clock())
        except Exception as exc:  # noqa: BLE001
            self._dead_letter(self._bug(exc, item), item, outbox, self.clock())
        await self._publish(outbox)

    def _dead_letter(self, rejected: Rejected, item: Incoming, outbox: Outbox, now: str) -> None:
        message = item.message
        self.metrics.dead_letters[rejected.reason] += 1
        event = item.event
        letter = dead_letter(
            reason=rejected.reason,
            detail=rejected.detail,
            source=item.source,
            key=message.key,
            value=message.value,
            now=now,
            timestamp=message.timestamp,
            event_type=str(event.type) if event else rejected.event_type,
            external_order_id=event.external_order_id if event else rejected.external_order_id,
        )
        # DEBUG: a bad producer can send thousands a second; the counters and the DLQ tell it.
        log.debug(
            "Dead letter %s at %s: %s", rejected.reason, item.source.event_id, rejected.detail
        )
        outbox.add(
            self.dlq_topic, letter.key, codec.dumps(letter.value), headers=tuple(letter.headers)
        )


def register(processor: Processor) -> Pipeline:
    app = processor.app
    settings = processor.settings
    pipeline = Pipeline(processor)
    batch, within = settings.batch_size, settings.batch_wait_ms / 1000

    @app.agent(processor.topics.events, name="orders", concurrency=AGENT_CONCURRENCY)
    async def orders(stream: Any) -> None:
        async for events in stream.batches(batch, within):
            await pipeline.on_order_batch(events, may_rekey=True)

    @app.agent(processor.topics.rekeyed, name="orders-rekeyed", concurrency=AGENT_CONCURRENCY)
    async def orders_rekeyed(stream: Any) -> None:
        async for events in stream.batches(batch, within):
            await pipeline.on_order_batch(events, may_rekey=False)

    @app.agent(processor.topics.contacts, name="contacts", concurrency=AGENT_CONCURRENCY)
    async def contacts_import(stream: Any) -> None:
        async for event in stream.events():
            await pipeline.on_contact(event.message)

    return pipeline
