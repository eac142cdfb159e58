"""The outputs of one agent batch, sent to Kafka as whole record batches.

Faust's ``send_soon`` puts each record through its producer buffer and one aiokafka ``send()``
await; at thousands of records a second that plumbing cost more CPU than our processing (see
bench/PROFILE.md). An :class:`Outbox` collects a batch's records instead (RFM records, dead
letters, re-keyed events, the table's changelog), and :class:`KafkaPublisher` hands each topic
partition's share to aiokafka as one ready-made record batch (``create_batch`` /
``send_batch``) on the producer Faust itself uses. It does not wait for the broker's
acknowledgement: the next batch is processed meanwhile, and Faust's flush before every offset
commit is what waits. It does let aiokafka's sender put the batches on the wire first
(:data:`SENDER_TURNS`).

Partitioning is Kafka's default for keyed records, so consumers see what any client would write:
murmur2(key) % partitions (:mod:`processor.routing`). An explicit partition is kept. A record with
neither (a dead letter of an unkeyed event) goes by the same hash of its value: unkeyed records
spread over the partitions, and a repeat lands beside its first copy.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from processor.immutable import immutable
from processor.routing import partition_for, partition_of

Headers = tuple[tuple[str, bytes], ...]
#: Called with the offset of the last record this batch wrote to one topic partition.
OnDelivered = Callable[[int], None]

#: Turns of the event loop that aiokafka's sender takes to write batches handed to it: two with
#: aiokafka 0.14 (its sender wakes and drains them into a produce request task, which writes the
#: request), and one to spare (tests/integration/test_publisher.py). With events waiting, an
#: agent goes from one batch to the next without a turn of the loop, so without these a batch's
#: outputs stayed in the producer until the next batch was done: up to 30 ms more latency in the
#: seconds the worker was behind (bench/PROFILE.md, session 14). An idle turn costs microseconds.
SENDER_TURNS = 3


@immutable
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers = ()


class Outbox:
    """Records to send, in the order they were added. Pure: no I/O."""

    def __init__(self) -> None:
        self.records: list[Output] = []
        self._on_delivered: dict[tuple[str, int], OnDelivered] = {}

    def __len__(self) -> int:
        return len(self.records)

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Headers = (),
    ) -> None:
        self.records.append(Output(topic, key, value, partition, headers))

    def on_delivered(self, topic: str, partition: int, callback: OnDelivered) -> None:
        self._on_delivered[(topic, partition)] = callback

    def by_partition(self, partitions: Mapping[str, int]) -> dict[tuple[str, int], list[Output]]:
        """The records grouped by topic partition, each group in the order it was added.

        ``partitions`` gives the partition count of every topic with a record that names none.
        """
        groups: dict[tuple[str, int], list[Output]] = defaultdict(list)
        for record in self.records:
            partition = record.partition
            if partition is None:
                count = partitions[record.topic]
                if record.key is not None:
                    partition = partition_for(record.key, count)
                else:
                    partition = partition_of(record.value or b"", count)
            groups[(record.topic, partition)].append(record)
        return groups

    def unpartitioned_topics(self) -> set[str]:
        return {r.topic for r in self.records if r.partition is None}

    def delivered(self, last_offsets: Mapping[tuple[str, int], int]) -> None:
        for tp, offset in last_offsets.items():
            callback = self._on_delivered.get(tp)
            if callback is not None:
                callback(offset)


class Publisher(Protocol):
    async def publish(self, outbox: Outbox, on_failure: Callable[[BaseException], None]) -> None:
        """Hand every record to the producer. Returns before the broker acknowledges them:
        ``outbox``'s delivery callbacks run as they are, and ``on_failure`` if any is not."""


class KafkaPublisher:
    """Publishes outboxes on the aiokafka producer under Faust's, one record batch per topic
    partition (more when a batch fills up).

    Sharing Faust's producer keeps one connection pool and one set of producer settings, and it
    is what makes returning before the acknowledgements safe: Faust flushes this producer (waits
    for every batch in flight) before it commits any offset, and a failed batch has called
    ``on_failure`` by then (its callbacks run before the flush's own).
    """

    def __init__(self, producer: Callable[[], Any]) -> None:
        self._producer = producer

    async def publish(self, outbox: Outbox, on_failure: Callable[[BaseException], None]) -> None:
        if not outbox.records:
            return
        producer = self._producer()
        counts = {
            topic: len(await producer.partitions_for(topic))
            for topic in outbox.unpartitioned_topics()
        }
        for (topic, partition), records in outbox.by_partition(counts).items():
            for builder in _builders(producer, records):
                future = await producer.send_batch(builder, topic, partition=partition)
                count = builder.record_count()
                future.add_done_callback(
                    partial(_on_batch_done, outbox, (topic, partition), count, on_failure)
                )
        for _ in range(SENDER_TURNS):
            await asyncio.sleep(0)


def _on_batch_done(
    outbox: Outbox,
    tp: tuple[str, int],
    count: int,
    on_failure: Callable[[BaseException], None],
    future: asyncio.Future[Any],
) -> None:
    if future.cancelled() or future.exception() is not None:
        exc = asyncio.CancelledError() if future.cancelled() else future.exception()
        assert exc is not None
        exc.add_note(f"a batch of {count} records for {tp[0]}[{tp[1]}]")
        on_failure(exc)
    else:
        outbox.delivered({tp: future.result().offset + count - 1})


def _builders(producer: Any, records: Sequence[Output]) -> list[Any]:
    """The records in as few closed batch builders as the producer's batch size allows.

    A builder takes its first record whatever its size, so every record fits somewhere.
    """
    builders = []
    builder = producer.create_batch()
    for record in records:
        headers = list(record.headers)
        if (
            builder.append(key=record.key, value=record.value, timestamp=None, headers=headers)
            is None
        ):
            builder.close()
            builders.append(builder)
            builder = producer.create_batch()
            builder.append(key=record.key, value=record.value, timestamp=None, headers=headers)
    builder.close()
    builders.append(builder)
    return builders
