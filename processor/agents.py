"""The agents: thin wiring between topics, the orders table, Redis and the pure functions.

Every record is read as raw bytes and parsed here, so that nothing can make an agent raise:
Faust acks a message whose agent raised, which would lose it silently. Whatever the rules drop,
and whatever our own code fails on, becomes a dead letter before the offset can be committed
(Faust flushes the producer before every commit).

Each agent runs at concurrency 1: with more, Faust can commit an offset past an event that is
still in flight (faust-streaming #606).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError

from processor import codec, contacts
from processor.app import Processor
from processor.contacts import Lookup
from processor.deadletters import dead_letter
from processor.directory import retrying
from processor.errors import Rejected
from processor.events import EventType, Limits, OrderEvent, parse_event
from processor.orders import Order, Rules, Source, apply
from processor.reasons import Reason
from processor.routing import partition_for

log = logging.getLogger(__name__)

AGENT_CONCURRENCY = 1
REKEY_HEADER = "rekeyed-from"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Pipeline:
    """One record in, state and outputs out; the agents only feed it."""

    def __init__(self, processor: Processor, clock: Callable[[], str] = utc_now) -> None:
        self.p = processor
        settings = processor.settings
        self.clock = clock
        self.limits = Limits(max_bytes=settings.max_event_bytes, max_depth=settings.max_depth)
        self.rules = Rules(mismatch=settings.total_mismatch, history_limit=settings.history_limit)
        self.id_order = contacts.identification_order(settings.contact_id_params)
        self.metrics = processor.metrics

    async def on_order_event(self, message: Any, *, may_rekey: bool) -> None:
        source = Source(message.topic, message.partition, message.offset)
        raw: bytes | None = message.value
        event: OrderEvent | None = None
        try:
            event = parse_event(raw, self.limits)
            self.metrics.events[event.type] += 1
            key = event.external_order_id.encode()
            owner = partition_for(key, self.p.settings.partitions)
            if may_rekey and owner != message.partition:
                await self._rekey(key, owner, message)
                return
            await self._apply(key, event, source)
        except Rejected as rejected:
            await self._dead_letter(
                rejected.reason, rejected.detail, message, source, event or rejected
            )
        except Exception as exc:
            log.exception("Failed on %s; dead-lettering it", source.event_id)
            detail = f"{type(exc).__name__}: {exc}"
            await self._dead_letter(Reason.PROCESSING_ERROR, detail, message, source, event)

    async def _apply(self, key: bytes, event: OrderEvent, source: Source) -> None:
        lookup = await self._lookup(event)
        # No await between reading and writing the order: the two order agents share the table.
        stored = self.p.orders.get(key)
        order = None if stored is None else Order.from_dict(stored)
        transition = apply(
            order, event, source=source, now=self.clock(), contact=lookup, rules=self.rules
        )
        if transition.replay:
            self.metrics.replays += 1
        else:
            self.p.orders[key] = transition.order.to_dict()
            if transition.changed:
                self.metrics.applied += 1
            else:
                self.metrics.unchanged += 1
        if transition.flagged:
            self.metrics.flagged_total_mismatch += 1
            log.warning(
                "Order %s: totalCost does not match its items (flagged)", event.external_order_id
            )
        for record in transition.rfm:
            await self._send(self.p.topics.rfm, record.contact_id.encode(), record.value)
            self.metrics.rfm_records[record.value["op"]] += 1

    async def _lookup(self, event: OrderEvent) -> Lookup:
        if event.type in (EventType.DELIVERED, EventType.CANCELLED):
            return None  # the order already knows its contact
        idents = contacts.identifiers(event.params, self.id_order)
        if not idents:
            return None
        return await retrying(lambda: self.p.directory.resolve(idents), what="contact lookup")

    async def _rekey(self, key: bytes, partition: int, message: Any) -> None:
        self.metrics.rekeyed += 1
        origin = f"{message.topic}/{message.partition}/{message.offset}".encode()
        await self._send(
            self.p.topics.rekeyed,
            key,
            message.value,
            partition=partition,
            headers=[(REKEY_HEADER, origin)],
        )

    async def on_contact(self, message: Any) -> None:
        source = Source(message.topic, message.partition, message.offset)
        try:
            if message.value is None:
                if not message.key:
                    raise Rejected(Reason.INVALID_CONTACT, "a tombstone without a key")
                contact_id = message.key.decode()
                await retrying(lambda: self.p.directory.delete(contact_id), what="contact delete")
                self.metrics.contacts_deleted += 1
                return
            try:
                record = codec.loads(message.value)
            except ValueError as exc:
                raise Rejected(Reason.MALFORMED_JSON, f"not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise Rejected(Reason.INVALID_CONTACT, "a contact must be a JSON object")
            contact = contacts.parse_contact(record)
            await retrying(lambda: self.p.directory.upsert(contact), what="contact import")
            self.metrics.contacts_upserted += 1
        except Rejected as rejected:
            await self._dead_letter(rejected.reason, rejected.detail, message, source, None)
        except Exception as exc:
            log.exception("Failed on contact %s; dead-lettering it", source.event_id)
            detail = f"{type(exc).__name__}: {exc}"
            await self._dead_letter(Reason.PROCESSING_ERROR, detail, message, source, None)

    async def _dead_letter(
        self,
        reason: Reason,
        detail: str,
        message: Any,
        source: Source,
        event: OrderEvent | Rejected | None,
    ) -> None:
        self.metrics.dead_letters[reason] += 1
        letter = dead_letter(
            reason=reason,
            detail=detail,
            source=source,
            key=message.key,
            value=message.value,
            now=self.clock(),
            timestamp=message.timestamp,
            event_type=_event_type(event),
            external_order_id=None if event is None else event.external_order_id,
        )
        log.info("Dead letter %s at %s: %s", reason, source.event_id, detail)
        await self._send(self.p.topics.dlq, letter.key, letter.value, headers=letter.headers)

    async def _send(
        self,
        topic: Any,
        key: bytes | None,
        value: Any,
        *,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        # Until Kafka takes it the event stays in flight, so its offset cannot be committed.
        delay = 0.2
        while True:
            try:
                await topic.send(key=key, value=value, partition=partition, headers=headers)
                return
            except KafkaError as exc:
                log.warning("Send to %s failed, retrying: %s", topic.get_topic_name(), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _event_type(event: OrderEvent | Rejected | None) -> str | None:
    if isinstance(event, OrderEvent):
        return str(event.type)
    return None if event is None else event.event_type


def register(processor: Processor) -> Pipeline:
    app = processor.app
    pipeline = Pipeline(processor)

    @app.agent(processor.topics.events, name="orders", concurrency=AGENT_CONCURRENCY)
    async def orders(stream: Any) -> None:
        async for event in stream.events():
            await pipeline.on_order_event(event.message, may_rekey=True)

    @app.agent(processor.topics.rekeyed, name="orders-rekeyed", concurrency=AGENT_CONCURRENCY)
    async def orders_rekeyed(stream: Any) -> None:
        async for event in stream.events():
            await pipeline.on_order_event(event.message, may_rekey=False)

    @app.agent(processor.topics.contacts, name="contacts", concurrency=AGENT_CONCURRENCY)
    async def contacts_import(stream: Any) -> None:
        async for event in stream.events():
            await pipeline.on_contact(event.message)

    return pipeline
