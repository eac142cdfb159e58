"""The agents in Faust's in-memory test context: wiring only; the rules are tested in tests/unit.

Outputs are captured by a publisher that stands in for Kafka; the table is the in-memory store.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from processor import agents as agents_module
from processor import codec
from processor.app import Processor
from processor.contacts import Contact, Identifier, Lookup, Match, NoMatch
from processor.outbox import Outbox, Output
from processor.routing import partition_for, partition_of
from tests.agents.support import offline_processor, settled

PARTITIONS = 4


class MemoryDirectory:
    """ContactDirectory over a dict; the first ``outages`` lookups fail as if Redis were down."""

    def __init__(self, outages: int = 0) -> None:
        self.index: dict[tuple[str, str], str] = {}
        self.outages = outages
        self.deleted: list[str] = []

    async def resolve_many(self, batch: Sequence[Sequence[Identifier]]) -> list[Lookup]:
        if self.outages:
            self.outages -= 1
            raise RedisConnectionError("Redis is down (test)")
        return [self._resolve(identifiers) for identifiers in batch]

    def _resolve(self, identifiers: Sequence[Identifier]) -> Lookup:
        if not identifiers:
            return None
        for ident in identifiers:
            if (ident.field, ident.value) in self.index:
                return Match(self.index[(ident.field, ident.value)], ident)
        return NoMatch(tuple(identifiers))

    async def upsert(self, contact: Contact) -> None:
        for field, value in contact.index_entries():
            self.index[(field, value)] = contact.id

    async def delete(self, contact_id: str) -> None:
        self.deleted.append(contact_id)


class Sent:
    """A publisher that keeps what it is given, grouped as Kafka would partition it."""

    def __init__(self, topics: dict[str, str]) -> None:
        self.roles = {name: role for role, name in topics.items()}
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    async def publish(self, outbox: Outbox, on_failure: Callable[[BaseException], None]) -> None:
        counts = dict.fromkeys(outbox.unpartitioned_topics(), PARTITIONS)
        last = {}
        for (topic, partition), records in outbox.by_partition(counts).items():
            for record in records:
                self.records.append((self.roles.get(topic, topic), self._fields(record, partition)))
            self.offsets[(topic, partition)] = self.offsets.get((topic, partition), -1) + len(
                records
            )
            last[(topic, partition)] = self.offsets[(topic, partition)]
        outbox.delivered(last)

    @staticmethod
    def _fields(record: Output, partition: int) -> dict[str, Any]:
        value: Any = record.value
        if record.topic.endswith((".rfm", ".dlq")):
            value = json.loads(record.value or b"null")
        return {
            "key": record.key,
            "value": value,
            "partition": partition,
            "headers": record.headers,
        }

    def to(self, role: str) -> list[dict[str, Any]]:
        return [kw for r, kw in self.records if r == role]


@pytest.fixture
def directory() -> MemoryDirectory:
    d = MemoryDirectory()
    d.index[("email", "a@example.com")] = "c-1"
    return d


@pytest.fixture
def processor(directory: MemoryDirectory, tmp_path: Path) -> Iterator[Processor]:
    # Sends are captured below (fixture sent).
    with offline_processor(tmp_path, directory=directory, partitions=PARTITIONS) as processor:
        yield processor


@pytest.fixture
def sent(processor: Processor) -> Sent:
    topics = {role: topic.get_topic_name() for role, topic in vars_of(processor.topics).items()}
    topics["changelog"] = processor.orders.changelog_topic.get_topic_name()
    captured = Sent(topics)
    processor.publisher = captured
    return captured


def vars_of(topics: Any) -> dict[str, Any]:
    return {name: getattr(topics, name) for name in ("events", "rekeyed", "contacts", "rfm", "dlq")}


def created(order_id: str, status: str = "DELIVERED", **extra: str) -> bytes:
    params = {
        "externalOrderId": order_id,
        "totalCost": "12.50",
        "status": status,
        "date": "2024-01-02T03:04:05",
        "email": "A@Example.com",
        **extra,
    }
    return json.dumps(
        {
            "eventTypeKey": "orderCreated",
            "params": [{"name": k, "value": v} for k, v in params.items()],
        }
    ).encode()


def owner(order_id: str) -> int:
    return partition_for(order_id.encode(), PARTITIONS)


async def test_event_on_owning_partition_is_applied(processor: Processor, sent: Sent) -> None:
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-1"), key=b"o-1", partition=owner("o-1"))
    assert processor.metrics.batches == 1
    assert processor.metrics.slowest_batch_ms > 0
    stored = processor.orders.get(b"o-1")
    assert stored["contactId"] == "c-1"
    assert stored["totalCost"] == "12.50"
    [rfm] = sent.to("rfm")
    assert rfm["key"] == b"c-1"
    assert rfm["value"]["op"] == "delivered"
    assert sent.to("dlq") == []


async def test_event_on_another_partition_is_rekeyed_not_applied(
    processor: Processor, sent: Sent
) -> None:
    wrong = (owner("o-2") + 1) % PARTITIONS
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-2"), key=None, partition=wrong)
    assert processor.orders.get(b"o-2") is None
    [forwarded] = sent.to("rekeyed")
    assert forwarded["key"] == b"o-2"
    assert forwarded["partition"] == owner("o-2")
    assert forwarded["value"] == created("o-2")


async def test_rekeyed_agent_applies_without_rekeying_again(
    processor: Processor, sent: Sent
) -> None:
    async with processor.app.agents["orders-rekeyed"].test_context() as agent:
        await agent.put(created("o-3"), key=b"o-3", partition=(owner("o-3") + 1) % PARTITIONS)
    assert processor.orders.get(b"o-3")["contactId"] == "c-1"
    assert sent.to("rekeyed") == []


async def test_bad_input_is_dead_lettered_and_the_agent_goes_on(
    processor: Processor, sent: Sent
) -> None:
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(b"\xff not json", key=b"k", partition=0)
        await agent.put(None, key=b"k", partition=0)
        await agent.put(created("o-4"), key=b"o-4", partition=owner("o-4"))
    reasons = [letter["value"]["reason"] for letter in sent.to("dlq")]
    assert reasons == ["malformed_json", "invalid_event"]
    assert processor.orders.get(b"o-4") is not None


async def test_a_bug_of_ours_becomes_a_processing_error_dead_letter(
    processor: Processor, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(agents_module, "apply", broken)
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-5"), key=b"o-5", partition=owner("o-5"))
    [letter] = sent.to("dlq")
    assert letter["value"]["reason"] == "processing_error"
    assert "RuntimeError: boom" in letter["value"]["detail"]
    assert letter["value"]["externalOrderId"] == "o-5"


async def test_redis_outage_is_waited_out_not_dead_lettered(
    processor: Processor, sent: Sent, directory: MemoryDirectory
) -> None:
    directory.outages = 2
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-6"), key=b"o-6", partition=owner("o-6"))
        await settled(lambda: processor.orders.get(b"o-6") is not None)  # it backs off first
    assert directory.outages == 0
    assert processor.orders.get(b"o-6")["contactId"] == "c-1"
    assert processor.metrics.redis_waits == 2
    assert sent.to("dlq") == []


async def test_contacts_agent_upserts_deletes_and_dead_letters(
    processor: Processor, sent: Sent, directory: MemoryDirectory
) -> None:
    async with processor.app.agents["contacts"].test_context() as agent:
        await agent.put(json.dumps({"id": "c-9", "phone": "+1"}).encode(), key=b"c-9")
        await agent.put(None, key=b"c-8")
        await agent.put(json.dumps({"phone": "+2"}).encode(), key=b"c-7")
        await agent.put(b"[", key=b"c-6")
    assert directory.index[("phone", "+1")] == "c-9"
    assert directory.deleted == ["c-8"]
    reasons = [letter["value"]["reason"] for letter in sent.to("dlq")]
    assert reasons == ["invalid_contact", "malformed_json"]


async def test_every_agent_runs_at_concurrency_one(processor: Processor) -> None:
    # More than one actor per agent lets Faust commit past an in-flight event (faust #606).
    assert {name: agent.concurrency for name, agent in processor.app.agents.items()} == {
        "orders": 1,
        "orders-rekeyed": 1,
        "contacts": 1,
    }


async def test_a_replayed_event_rewrites_the_order_so_the_changelog_catches_up(
    processor: Processor, sent: Sent
) -> None:
    # After kill -9 the local store can hold a write whose changelog record never left; the
    # event comes again (its offset was not committed) and must send that record after all.
    def changelog() -> list[bytes]:
        return [r["key"] for r in sent.to("changelog")]

    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-7"), key=b"o-7", partition=owner("o-7"))
        await settled(lambda: changelog() == [b"o-7"])  # a batch of its own: no coalescing
        agent.sent_offset = 0  # the same record again, at the same offset
        await agent.put(created("o-7"), key=b"o-7", partition=owner("o-7"))
        await settled(lambda: processor.metrics.replays == 1)
    assert changelog() == [b"o-7", b"o-7"]
    assert processor.metrics.replays == 1
    assert processor.orders.get(b"o-7")["version"] == 1
    # Its RFM record is sent again too (consumers keep the highest version).
    assert [r["value"]["version"] for r in sent.to("rfm")] == [1, 1]


async def test_an_order_touched_twice_in_a_batch_is_written_once_with_its_last_state(
    processor: Processor, sent: Sent
) -> None:
    batch = [created("o-8", status="INITIALIZED"), created("o-8", status="DELIVERED")]
    async with processor.app.agents["orders"].test_context() as agent:
        for value in batch:
            await agent.put(value, key=b"o-8", partition=owner("o-8"))
        await settled(lambda: processor.metrics.applied == 2)
    writes = [r for r in sent.to("changelog") if r["key"] == b"o-8"]
    assert [json.loads(w["value"])["status"] for w in writes][-1] == "DELIVERED"
    assert all(w["partition"] == owner("o-8") for w in writes)
    assert processor.orders.get(b"o-8")["version"] == 2


async def test_outputs_go_to_the_partition_kafka_would_choose(
    processor: Processor, sent: Sent
) -> None:
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-9"), key=b"o-9", partition=owner("o-9"))
        await agent.put(b"{", key=None, partition=1)
        await agent.put(b"[", key=None, partition=1)
    [rfm] = sent.to("rfm")
    assert rfm["partition"] == partition_for(b"c-1", PARTITIONS)
    # Dead letters without a key go by their value's hash: spread, and the same every time.
    letters = sent.to("dlq")
    assert len(letters) == 2
    for letter in letters:
        value = codec.dumps(letter["value"])
        assert letter["partition"] == partition_of(value, PARTITIONS)


async def test_a_slow_batch_is_logged_with_its_waits(
    processor: Processor, sent: Sent, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setattr(agents_module, "SLOW_BATCH_SECONDS", 0.0)
    async with processor.app.agents["orders"].test_context() as agent:
        await agent.put(created("o-10"), key=b"o-10", partition=owner("o-10"))
    [warning] = [r for r in caplog.records if r.getMessage().startswith("A batch of 1 events")]
    assert "Redis" in warning.getMessage() and "Kafka" in warning.getMessage()


async def test_rejected_events_leave_no_reference_cycle(processor: Processor, sent: Sent) -> None:
    # A rejection kept with its traceback (or its context's, after ``raise ... from None``) held
    # the frames of the batch, and through them every event, order and output of it, until the
    # cyclic GC freed them: 30k objects and ~100 ms pauses every few seconds under load.
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # unreachable objects go to gc.garbage instead of freed
    try:
        async with processor.app.agents["orders"].test_context() as agent:
            await agent.put(b"{", key=None, partition=1)  # malformed: the decoder's error
            await agent.put(b'{"eventTypeKey": "nope"}', key=None, partition=1)
            await agent.put(created("o-11"), key=b"o-11", partition=owner("o-11"))
            await settled(lambda: len(sent.to("dlq")) == 2 and len(sent.to("rfm")) == 1)
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, agents_module.Incoming)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cyclic == []
