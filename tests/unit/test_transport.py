"""The worker's transport: fetch wait bounded, polls that fit the stream buffer, a cheap
hand-over of each message to the streams, fetches handed over whole to the streams that take
chunks, and the producer buffer's size read cheaply.

Faust's drain loop calls ``consumer.wait_first(callback(message), suspend_flow.wait())`` once per
message; these tests call it the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP
from mode.utils.queues import FlowControlQueue

from processor import transport
from processor.streams import Chunk, ChunkInbox
from tests.agents.support import offline_processor


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    with offline_processor(tmp_path) as processor:
        yield processor.app


@pytest.fixture
async def consumer(app: Any) -> AsyncIterator[transport.Consumer]:
    # Async on purpose: Faust makes the consumer on first use, on the loop running then.
    consumer = app.consumer
    assert isinstance(consumer, transport.Consumer)
    yield consumer


async def test_the_worker_consumer_is_built_with_the_bounded_and_batched_fetch(app: Any) -> None:
    assert isinstance(app.transport, transport.Transport)
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert isinstance(thread, transport.ConsumerThread)
        # The defaults (processor.settings), not Faust's 1500 ms and aiokafka's 1 byte.
        assert consumer._fetch_max_wait_ms == 5
        assert consumer._fetch_min_bytes == 65_536
    finally:
        await consumer.stop()


async def test_the_fetch_settings_reach_the_worker_consumer(tmp_path: Path) -> None:
    with offline_processor(tmp_path, fetch_max_wait_ms=7, fetch_min_bytes=1) as processor:
        app = processor.app
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (7, 1)
        finally:
            await consumer.stop()


async def test_the_consumer_runs_on_the_workers_loop_by_default(app: Any) -> None:
    consumer = app.consumer._thread
    assert isinstance(consumer, transport.InLoopConsumer)
    assert consumer.thread_loop is asyncio.get_running_loop()
    ran_on: list[tuple[int, asyncio.AbstractEventLoop]] = []

    async def fetch(answer: int) -> int:
        ran_on.append((threading.get_ident(), asyncio.get_running_loop()))
        return answer

    # Faust's consumer hands every call to aiokafka (fetch, commit, seek) through call_thread.
    assert await consumer.call_thread(fetch, 42) == 42
    assert ran_on == [(threading.get_ident(), asyncio.get_running_loop())]


async def test_the_consumer_thread_comes_back_with_its_setting(tmp_path: Path) -> None:
    with offline_processor(tmp_path, consumer_thread=True) as processor:
        consumer = processor.app.consumer._thread
        assert isinstance(consumer, transport.ConsumerThread)
        assert not isinstance(consumer, transport.InLoopConsumer)
        assert consumer.thread_loop is not asyncio.get_running_loop()


async def test_a_callback_that_need_not_wait_runs_at_once_without_tasks(
    consumer: transport.Consumer,
) -> None:
    ran: list[str] = []

    async def callback(message: str) -> str:
        ran.append(message)
        return message.upper()

    loop = asyncio.get_running_loop()
    tasks_before = asyncio.all_tasks(loop)
    suspended = consumer.suspend_flow.wait()
    results = await consumer.wait_first(callback("m1"), suspended)

    assert ran == ["m1"]
    assert results.results == ["M1"] and not results.stopped
    assert asyncio.all_tasks(loop) == tasks_before
    assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED  # no warning left


async def test_a_callback_that_waits_is_finished_and_its_result_returned(
    consumer: transport.Consumer,
) -> None:
    room = asyncio.get_running_loop().create_future()

    async def callback(message: str) -> str:
        await room  # a full stream buffer, say
        return message.upper()

    waiting = asyncio.ensure_future(
        consumer.wait_first(callback("m2"), consumer.suspend_flow.wait())
    )
    await asyncio.sleep(0.01)
    assert not waiting.done()
    room.set_result(None)
    results = await asyncio.wait_for(waiting, 5)
    assert results.results == ["M2"] and not results.stopped


async def test_a_waiting_callback_is_cancelled_when_the_flow_is_suspended(
    consumer: transport.Consumer,
) -> None:
    cancelled = asyncio.Event()

    async def callback() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never resolved
        except asyncio.CancelledError:
            cancelled.set()
            raise

    waiting = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    consumer.suspend_flow.set()  # what a rebalance does
    results = await asyncio.wait_for(waiting, 5)
    assert results.results == [True]  # the suspension won
    await asyncio.wait_for(cancelled.wait(), 5)


@pytest.mark.parametrize("waits_first", [False, True])
async def test_a_callback_error_reaches_the_drain_loop(
    consumer: transport.Consumer, waits_first: bool
) -> None:
    async def callback() -> None:
        if waits_first:
            await asyncio.sleep(0)
        raise ValueError("broken callback")

    with pytest.raises(ValueError, match="broken callback"):
        await consumer.wait_first(callback(), consumer.suspend_flow.wait())


def test_a_whole_poll_fits_in_the_stream_buffer_once_fetching_stops(app: Any) -> None:
    # Faust pauses a partition when its stream buffer reaches maxsize / pressure_high_ratio, and
    # then still puts the rest of the poll in: that rest must fit, or each message waits for room.
    maxsize = app.conf.stream_buffer_maxsize
    paused_at = maxsize / FlowControlQueue.pressure_high_ratio
    assert 0 < app.conf.broker_max_poll_records <= maxsize - paused_at


async def test_the_producer_buffer_counts_what_send_soon_left_pending(app: Any) -> None:
    buffer = app.producer.buffer
    assert isinstance(buffer, transport.ProducerBuffer)
    assert buffer.app is app
    assert buffer.size == 0
    for index in range(3):
        # The buffer only queues what send_soon gives it; a stand-in for its FutureMessage.
        buffer.put(cast(Any, f"record-{index}"))
    assert buffer.size == 3
    # The conductor waits on it before each message: nothing to wait for below the bound.
    await asyncio.wait_for(buffer.wait_until_ebb(), timeout=1)


def record(offset: int, value: bytes, *, topic: str = "events", partition: int = 0) -> Any:
    return ConsumerRecord(
        topic, partition, offset, 1_700_000_000_000, 0, b"key", value, None, 3, len(value), []
    )


#: Events the test inbox holds before the drain loop waits (the stream buffer's size).
CAPACITY = 4


@pytest.fixture
def inbox() -> ChunkInbox:
    return ChunkInbox(asyncio.Queue(), CAPACITY)


async def waiting_for_room(
    consumer: transport.Consumer, tp: TP, records: list[Any], inbox: ChunkInbox, generation: int
) -> asyncio.Future[None]:
    """A hand-over started with the inbox full: it is still waiting a moment later."""
    handing = asyncio.ensure_future(consumer._hand_over(tp, records, inbox, generation))
    await asyncio.sleep(0.05)
    assert not handing.done()
    return handing


def reader_takes_one(inbox: ChunkInbox) -> None:
    inbox.queue.get_nowait()
    inbox.taken()


def read_in_chunks(app: Any, monkeypatch: pytest.MonkeyPatch, tp: TP, inbox: ChunkInbox) -> None:
    """The partition is read by one channel that takes chunks, through ``inbox``."""

    class Channel:
        chunk_inbox = inbox

    monkeypatch.setitem(app.topics._tp_index, tp, {Channel()})


async def test_a_fetched_partition_is_handed_over_as_one_chunk_of_events(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox
) -> None:
    app.flow_control.resume()
    tp = TP("events", 2)
    records = [record(offset, f"v{offset}".encode(), partition=2) for offset in (10, 11, 12)]

    await consumer._hand_over(tp, records, inbox, app.consumer_generation_id)

    assert inbox.queue.qsize() == 1 and inbox.queued() == 3
    chunk = inbox.queue.get_nowait()
    assert type(chunk) is Chunk
    assert [event.value for event in chunk] == [b"v10", b"v11", b"v12"]
    assert [event.message.offset for event in chunk] == [10, 11, 12]
    assert {event.message.tp for event in chunk} == {tp}
    # Counted as delivered to one channel, as the conductor counts it: one ack is the last.
    assert [event.message.refcount for event in chunk] == [1, 1, 1]
    assert consumer._read_offset[tp] == 12


async def test_records_before_the_read_offset_are_not_handed_over_again(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox
) -> None:
    app.flow_control.resume()
    tp = TP("events", 0)
    consumer._read_offset[tp] = 11
    records = [record(offset, b"v") for offset in (10, 11, 12)]

    await consumer._hand_over(tp, records, inbox, app.consumer_generation_id)

    assert [event.message.offset for event in inbox.queue.get_nowait()] == [11, 12]


async def test_a_gap_in_the_offsets_counts_as_acked(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox
) -> None:
    # A transaction marker or a compacted record leaves an offset that never comes: unless it
    # counts as acked, the committed offset can never pass it.
    app.flow_control.resume()
    app.topics.add(app.topic("gapped"))  # acked, as every topic an agent reads
    await app.topics._update_indices()
    assert app.topics.acks_enabled_for("gapped")
    events_tp = TP("gapped", 0)
    consumer._read_offset[events_tp] = 4
    records = [record(offset, b"v", topic=events_tp.topic) for offset in (5, 7, 8)]

    await consumer._hand_over(events_tp, records, inbox, app.consumer_generation_id)

    gaps = sorted((interval.begin, interval.end) for interval in consumer._gap[events_tp])
    assert gaps == [(6, 8)]  # Faust's own bounds: from the missing offset, end excluded
    assert consumer._read_offset[events_tp] == 8


async def test_the_commit_trigger_runs_once_enough_events_were_acked(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.flow_control.resume()
    commits: list[int] = []

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append(consumer._n_acked)
        return True

    monkeypatch.setattr(consumer, "commit", commit)
    consumer._commit_every = 100
    consumer._n_acked = 100
    await consumer._hand_over(TP("events", 0), [record(0, b"v")], inbox, app.consumer_generation_id)
    assert commits == [0] and consumer._n_acked == 0


async def test_the_drain_loop_waits_while_the_stream_buffer_is_full(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox
) -> None:
    app.flow_control.resume()
    generation = app.consumer_generation_id
    tp = TP("events", 0)
    # Counted in events, not chunks: a fetch of four partitions is four chunks at once, and a
    # bound of a few chunks split it into batches that waited for each other.
    await consumer._hand_over(tp, [record(0, b"v"), record(1, b"v")], inbox, generation)
    await consumer._hand_over(tp, [record(2, b"v")], inbox, generation)
    assert inbox.queued() == 3
    late = [record(3, b"late"), record(4, b"late")]
    handing = await waiting_for_room(consumer, tp, late, inbox, generation)  # 3 + 2 > 4

    reader_takes_one(inbox)
    await asyncio.wait_for(handing, 5)
    assert inbox.queued() == 3
    assert [event.value for event in list(inbox.queue._queue)[-1]] == [b"late", b"late"]


async def test_a_chunk_always_goes_into_an_empty_queue(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox
) -> None:
    app.flow_control.resume()
    records = [record(offset, b"v") for offset in range(CAPACITY * 2)]
    await asyncio.wait_for(
        consumer._hand_over(TP("events", 0), records, inbox, app.consumer_generation_id), 5
    )
    assert inbox.queued() == CAPACITY * 2


@pytest.mark.parametrize("rebalance", ["suspended", "new generation"])
async def test_a_rebalance_drops_the_chunk_waiting_for_room(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox, rebalance: str
) -> None:
    # As Faust's loop drops the message in hand: the new assignment fetches it again from the
    # committed offset.
    app.flow_control.resume()
    generation = app.consumer_generation_id
    tp = TP("events", 0)
    full = [record(offset, b"v") for offset in range(CAPACITY)]
    await consumer._hand_over(tp, full, inbox, generation)
    handing = await waiting_for_room(consumer, tp, [record(9, b"v")], inbox, generation)
    if rebalance == "suspended":
        consumer.suspend_flow.set()
    else:
        app.consumer_generation_id += 1
    await asyncio.wait_for(handing, 5)
    assert inbox.queue.qsize() == 1  # not put


async def test_a_chunk_that_waited_through_a_seek_is_not_handed_over(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox
) -> None:
    # Faust's recovery seeks the stream partitions to their committed offsets within one
    # generation. Records fetched before that are fetched again from there; handed over now, they
    # would move the read offset past the copies to come, which would then be dropped as read.
    app.flow_control.resume()
    generation = app.consumer_generation_id
    tp = TP("events", 0)
    full = [record(offset, b"v") for offset in range(100, 100 + CAPACITY)]
    await consumer._hand_over(tp, full, inbox, generation)
    handing = await waiting_for_room(consumer, tp, [record(104, b"stale")], inbox, generation)
    consumer._read_offset[tp] = 90  # the seek: reading resumes at the committed offset
    reader_takes_one(inbox)
    await asyncio.wait_for(handing, 5)
    assert inbox.queue.qsize() == 0
    assert consumer._read_offset[tp] == 90


async def test_an_emptied_queue_has_room_again(inbox: ChunkInbox) -> None:
    # A rebalance clears the stream's queue without anything taken.
    inbox.put(Chunk([object()] * CAPACITY))
    assert not inbox.has_room(1)
    inbox.queue.get_nowait()  # gone without being taken
    assert inbox.queued() == 0 and inbox.has_room(1)
    inbox.put(Chunk([object()]))
    assert inbox.queued() == 1 and inbox.has_room(CAPACITY - 1)


def test_only_a_partition_read_by_one_chunk_taking_channel_is_handed_over_whole(
    inbox: ChunkInbox,
) -> None:
    class Channel:
        pass

    taking, other = Channel(), Channel()
    taking.chunk_inbox = inbox  # type: ignore[attr-defined]
    assert transport._inbox_of({taking}) is inbox
    assert transport._inbox_of({other}) is None
    assert transport._inbox_of({taking, other}) is None  # two readers: one message each
    assert transport._inbox_of(None) is None


async def test_a_fetch_goes_whole_to_chunk_takers_and_one_by_one_to_the_others(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.flow_control.resume()
    chunked, single = TP("events", 0), TP("contacts", 0)

    class Channel:
        pass

    read_in_chunks(app, monkeypatch, chunked, inbox)
    monkeypatch.setitem(app.topics._tp_index, single, {Channel()})
    fetched = {
        chunked: [record(0, b"a"), record(1, b"b")],
        single: [record(5, b"c", topic="contacts"), record(6, b"d", topic="contacts")],
    }

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109 - Faust's
        return fetched, None

    delivered: list[bytes] = []

    async def callback(message: Any) -> None:
        delivered.append(message.value)

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 7)
    monkeypatch.setattr(consumer, "callback", callback)
    monkeypatch.setattr(consumer, "flow_active", True)

    await consumer._deliver_fetch()

    assert [event.value for event in inbox.queue.get_nowait()] == [b"a", b"b"]
    assert delivered == [b"c", b"d"]  # Faust's path: the conductor's callback per message
    assert (consumer._read_offset[chunked], consumer._read_offset[single]) == (1, 6)


async def test_a_seek_while_a_message_is_handed_over_ends_that_fetch(
    app: Any, consumer: transport.Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message-by-message path keeps the same rule as chunks: after a seek, the records in
    # hand are read again from where it put the reading, not handed over or counted as read.
    app.flow_control.resume()
    tp = TP("contacts", 0)
    consumer._read_offset[tp] = 5
    delivered: list[bytes] = []

    async def callback(message: Any) -> None:
        delivered.append(message.value)
        consumer._read_offset[tp] = 2  # the seek, while this message was being handed over

    monkeypatch.setattr(consumer, "highwater", lambda tp: 9)
    monkeypatch.setattr(consumer, "callback", callback)
    records = {tp: [record(offset, f"c{offset}".encode(), topic="contacts") for offset in (5, 6)]}
    await consumer._deliver_one_by_one(records, None, app.consumer_generation_id)

    assert delivered == [b"c5"]
    assert consumer._read_offset[tp] == 2


async def test_a_fetch_waits_until_a_seek_has_set_where_reading_resumes(
    app: Any, consumer: transport.Consumer, inbox: ChunkInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faust's seek to the committed offsets moves aiokafka's position partition by partition,
    # with a request to the broker before each, and sets the read offsets once it is done. A
    # fetch handed over in between had its read offset set back under it, and the next fetch
    # counted the offsets in between as a gap: acked, though never handed over that time.
    app.flow_control.resume()
    tp = TP("events", 0)
    read_in_chunks(app, monkeypatch, tp, inbox)
    seek_answered = asyncio.Event()
    fetched_after: list[int | None] = []

    async def seek_to_committed() -> dict[TP, int]:
        await seek_answered.wait()
        return {tp: 50}

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109 - Faust's
        fetched_after.append(consumer._read_offset[tp])
        return {tp: [record(50, b"a"), record(51, b"b")]}, None

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 52)
    monkeypatch.setattr(consumer, "flow_active", True)

    seeking = asyncio.ensure_future(consumer.perform_seek())
    await asyncio.sleep(0)
    delivering = asyncio.ensure_future(consumer._deliver_fetch())
    await asyncio.sleep(0.05)
    assert fetched_after == []  # no fetch while the seek is under way
    seek_answered.set()
    await asyncio.wait_for(asyncio.gather(seeking, delivering), 5)

    assert fetched_after == [50]
    assert [event.message.offset for event in inbox.queue.get_nowait()] == [50, 51]
    assert consumer._read_offset[tp] == 51


@pytest.mark.parametrize(
    "seek",
    [
        lambda consumer, tp: consumer.perform_seek(),
        lambda consumer, tp: consumer.seek(tp, 40),
        lambda consumer, tp: consumer.seek_wait({tp: 40}),
    ],
    ids=["to the committed offsets", "of one partition", "of several"],
)
async def test_a_seek_waits_until_the_fetch_in_hand_is_handed_over(
    app: Any,
    consumer: transport.Consumer,
    inbox: ChunkInbox,
    monkeypatch: pytest.MonkeyPatch,
    seek: Callable[[transport.Consumer, TP], Awaitable[None]],
) -> None:
    app.flow_control.resume()
    tp = TP("events", 0)
    read_in_chunks(app, monkeypatch, tp, inbox)
    fetching, records_came = asyncio.Event(), asyncio.Event()
    sought_after: list[int | None] = []

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109 - Faust's
        fetching.set()
        await records_came.wait()
        return {tp: [record(50, b"a"), record(51, b"b")]}, None

    async def seek_to_committed() -> dict[TP, int]:
        sought_after.append(consumer._read_offset[tp])
        return {tp: 40}

    async def seek_partition(partition: TP, offset: int) -> None:
        sought_after.append(consumer._read_offset[tp])

    async def seek_partitions(partitions: dict[TP, int]) -> None:
        # Faust's aiokafka thread seeks each and sets its read offset, then waits for positions.
        sought_after.append(consumer._read_offset[tp])
        consumer._read_offset.update(partitions)

    monkeypatch.setattr(consumer, "_wait_next_records", wait_next_records)
    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    monkeypatch.setattr(consumer, "_seek", seek_partition)
    monkeypatch.setattr(consumer._thread, "seek_wait", seek_partitions)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 52)
    monkeypatch.setattr(consumer, "flow_active", True)

    delivering = asyncio.ensure_future(consumer._deliver_fetch())
    await asyncio.wait_for(fetching.wait(), 5)
    seeking = asyncio.ensure_future(seek(consumer, tp))
    await asyncio.sleep(0.05)
    assert sought_after == []  # no seek while a fetch is in hand
    records_came.set()
    await asyncio.wait_for(asyncio.gather(delivering, seeking), 5)

    assert sought_after == [51]  # the fetch was handed over first
    assert consumer._read_offset[tp] == 40  # and reading resumes where the seek put it
