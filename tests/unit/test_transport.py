"""The worker's transport: fetch wait bounded, polls that fit the stream buffer, a cheap
hand-over of each message to the streams, and the producer buffer's size read cheaply.

Faust's drain loop calls ``consumer.wait_first(callback(message), suspend_flow.wait())`` once per
message; these tests call it the same way.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from mode.utils.queues import FlowControlQueue

from processor import transport
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
        assert consumer._fetch_max_wait_ms == transport.FETCH_MAX_WAIT_MS
        assert transport.FETCH_MAX_WAIT_MS < 1500
        assert consumer._fetch_min_bytes == transport.FETCH_MIN_BYTES > 1
    finally:
        await consumer.stop()


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
