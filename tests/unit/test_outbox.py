"""The outbox: how a batch's records are grouped for Kafka, and what a delivery reports back."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from processor.outbox import Outbox, _builders, _on_batch_done
from processor.routing import partition_for, partition_of


def test_records_group_by_topic_partition_in_the_order_added() -> None:
    outbox = Outbox()
    outbox.add("rfm", b"c-1", b"1")
    outbox.add("changelog", b"o-1", b"2", partition=3)
    outbox.add("rfm", b"c-1", b"3")
    outbox.add("changelog", b"o-2", b"4", partition=3)
    groups = outbox.by_partition({"rfm": 4})
    assert [r.value for r in groups[("rfm", partition_for(b"c-1", 4))]] == [b"1", b"3"]
    assert [r.value for r in groups[("changelog", 3)]] == [b"2", b"4"]
    assert len(groups) == 2


def test_a_keyed_record_goes_where_kafkas_default_partitioner_puts_it() -> None:
    outbox = Outbox()
    keys = [f"contact-{i}".encode() for i in range(50)]
    for key in keys:
        outbox.add("rfm", key, b"v")
    groups = outbox.by_partition({"rfm": 6})
    placed = {r.key: partition for (_, partition), records in groups.items() for r in records}
    assert placed == {key: partition_for(key, 6) for key in keys}
    assert len(groups) > 1


def test_an_unkeyed_record_goes_by_its_value_so_a_repeat_lands_beside_it() -> None:
    outbox = Outbox()
    outbox.add("dlq", None, b"letter-a")
    outbox.add("dlq", None, b"letter-a")
    outbox.add("dlq", None, b"letter-b")
    groups = outbox.by_partition({"dlq": 4})
    where = {r.value: p for (_, p), records in groups.items() for r in records}
    assert where[b"letter-a"] == partition_of(b"letter-a", 4)
    assert where[b"letter-b"] == partition_of(b"letter-b", 4)
    assert sum(len(records) for records in groups.values()) == 3


def test_an_explicit_partition_needs_no_partition_count() -> None:
    outbox = Outbox()
    outbox.add("rekeyed", b"o-1", b"v", partition=2)
    assert outbox.unpartitioned_topics() == set()
    assert list(outbox.by_partition({})) == [("rekeyed", 2)]


def settled(result: Any = None, exc: BaseException | None = None) -> asyncio.Future[Any]:
    """A batch's delivery future as aiokafka leaves it: done, with metadata or an error."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
    return future


async def test_delivery_reports_the_last_offset_of_each_batch() -> None:
    outbox = Outbox()
    seen: list[int] = []
    outbox.on_delivered("changelog", 1, seen.append)
    failures: list[BaseException] = []
    _on_batch_done(
        outbox, ("changelog", 1), 3, failures.append, settled(SimpleNamespace(offset=40))
    )
    # A topic partition nobody asked about is delivered quietly.
    _on_batch_done(outbox, ("rfm", 0), 1, failures.append, settled(SimpleNamespace(offset=7)))
    assert seen == [42]
    assert failures == []


@pytest.mark.parametrize("cancel", [False, True])
async def test_a_batch_kafka_did_not_take_is_reported_as_a_failure(cancel: bool) -> None:
    outbox = Outbox()
    delivered: list[int] = []
    outbox.on_delivered("changelog", 0, delivered.append)
    failures: list[BaseException] = []
    if cancel:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.cancel()
    else:
        future = settled(exc=TimeoutError("no broker"))
    _on_batch_done(outbox, ("changelog", 0), 5, failures.append, future)
    assert delivered == []
    [failure] = failures
    assert failure.__notes__ == ["a batch of 5 records for changelog[0]"]  # for the log


class FakeBuilder:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[bytes | None] = []
        self.closed = False

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: None, headers: Any
    ) -> Any:
        if self.closed or (self.records and len(self.records) >= self.capacity):
            return None
        self.records.append(value)
        return object()

    def close(self) -> None:
        self.closed = True


def test_records_beyond_one_batch_go_into_the_next_and_every_batch_is_closed() -> None:
    producer = SimpleNamespace(create_batch=lambda: FakeBuilder(capacity=2))
    outbox = Outbox()
    for i in range(5):
        outbox.add("t", b"k", str(i).encode(), partition=0)
    builders = _builders(producer, outbox.records)
    assert [b.records for b in builders] == [[b"0", b"1"], [b"2", b"3"], [b"4"]]
    assert all(b.closed for b in builders)
