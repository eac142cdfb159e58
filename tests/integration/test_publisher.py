"""The publisher on a real aiokafka producer and broker: what ``publish`` leaves behind."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from bench.infra import create_topic
from processor.outbox import KafkaPublisher, Outbox
from tests.integration.harness import read_topic


def _outbox(topic: str, name: str, count: int) -> Outbox:
    outbox = Outbox()
    for i in range(count):
        outbox.add(topic, f"{name}-{i}".encode(), b"{}", partition=i % 2)
    return outbox


async def test_publish_returns_with_its_batches_taken_by_the_producers_sender(
    kafka_bootstrap: str,
) -> None:
    # An agent with events waiting goes on to its next batch without giving the event loop a
    # turn: whatever publish leaves in the producer's accumulator waits until that batch is done.
    topic = f"t{uuid.uuid4().hex[:8]}.published"
    create_topic(kafka_bootstrap, topic, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
    await producer.start()
    failures: list[BaseException] = []
    try:
        publisher = KafkaPublisher(lambda: producer)
        # The first batch opens the connection to the partitions' leader, as a worker's first
        # batch does; the one after it is the case that matters.
        await publisher.publish(_outbox(topic, "first", 3), on_failure=failures.append)
        await producer.flush()

        await publisher.publish(_outbox(topic, "second", 10), on_failure=failures.append)

        # aiokafka's own state: nothing public says what its sender has taken and written.
        waiting = producer._message_accumulator._batches
        assert not waiting, f"batches still waiting for the sender: {list(waiting)}"
        written = [conn._requests for conn in producer.client._conns.values()]
        assert any(written), "no produce request written, awaiting its response"
        await producer.flush()
    finally:
        await producer.stop()
    assert failures == []
    keys = sorted(message.key() for message in read_topic(kafka_bootstrap, topic))
    assert keys == sorted(
        [f"first-{i}".encode() for i in range(3)] + [f"second-{i}".encode() for i in range(10)]
    )
