"""Faust's Kafka transport, with the consumer's fetches bounded in time and batched, and its
per-message costs cut (the hand-over to the streams, the producer buffer's size).

Fetch wait. Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. aiokafka keeps one fetch request in flight per broker, and leaves out of it every
partition whose fetched records have not been consumed yet; once those records are older than its
prefetch backoff (100 ms) it sends a request for the remaining partitions anyway. When those are
all quiet (the re-key and contacts topics, usually), the broker holds the request for the whole
wait, and the busy partitions cannot be fetched until it returns: events sat up to 1.5 s before
the agent saw them (bench/PROFILE.md). With the wait bounded, such a request comes back within
:data:`FETCH_MAX_WAIT_MS`.

Fetch size. With aiokafka's ``fetch_min_bytes=1`` the broker answers a fetch as soon as one
record is there, so under a steady load every fetch carried a handful of events and the
consumer's thread, its hop to the event loop and every agent batch were paid per handful: at
1,100 events/s the worker was 0.85 cores busy, a third of it in the consumer thread. With
:data:`FETCH_MIN_BYTES` the broker holds a fetch until that much is there or the wait is up, so
a fetch carries up to 20 ms of events: 0.61 cores, and the p99 at 1,800 events/s fell from
~350 ms to ~110 ms. A backlog fills it at once, so draining is not slowed.

Per-message wait. Faust's consumer hands every message to its streams through
``wait_first(callback(message), suspend_flow.wait())``, so that a rebalance can abandon a message
stuck behind a full stream buffer. ``mode``'s ``wait_first`` makes four tasks, an
``asyncio.wait`` and three cancellations for it: ~60 us a message on this machine, for a callback
that almost always finishes without waiting at all. :meth:`Consumer.wait_first` runs the callback
at once; only when it has to wait does it race it against the suspension, exactly as before.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.transport.producer import ProducerBuffer as FaustProducerBuffer
from mode.services import WaitArgT, WaitResults

FETCH_MAX_WAIT_MS = 20
FETCH_MIN_BYTES = 64 * 1024


class _Started:
    """Awaits the rest of a coroutine that has already run up to its first wait.

    A task cannot adopt a coroutine that has started, but it can await this: it hands the
    coroutine's pending future to the task, and resumes the coroutine (or throws into it, for a
    cancellation) each time the task resumes it.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, None, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - a cancellation, passed on as it came
                resume: BaseException | None = exc
            else:
                resume = None
            try:
                pending = coro.send(None) if resume is None else coro.throw(resume)
            except StopIteration as stop:
                return stop.value


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher, after this returns.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(
        self,
        *coros: WaitArgT,
        timeout: Any = None,  # noqa: ASYNC109 - mode's signature
    ) -> WaitResults:
        # Faust's consumer calls this only from its drain loop, as
        # wait_first(callback(message), suspend_flow.wait()).
        work = coros[0] if len(coros) == 2 and timeout is None else None
        if not isinstance(work, Coroutine) or self.should_stop or self.suspend_flow.is_set():
            return await super().wait_first(*coros, timeout=timeout)
        suspended = coros[1]
        try:
            pending = work.send(None)
        except BaseException as exc:
            if isinstance(suspended, Coroutine):
                suspended.close()  # never started: closed, or Python warns it was never awaited
            if isinstance(exc, StopIteration):
                return WaitResults([work], [exc.value], False)
            raise
        # It waits (a full stream buffer, flow control, the producer's buffer): race it against
        # the suspension, as Faust does.
        return await super().wait_first(_Started(work, pending), suspended)


class ProducerBuffer(FaustProducerBuffer):
    """Faust's buffer of ``send_soon`` records, its size read without a settings lookup: Faust's
    conductor asks for it before every message it delivers (~1.4% of the worker, most of it in
    ``app.conf``'s ``__getattribute__``)."""

    @property
    def size(self) -> int:
        return self.pending.qsize()


class Producer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A threaded producer keeps its records elsewhere; ours is not (Faust's default).
        if not self.app.conf.producer_threaded:
            buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)
            buffer.app = self.app
            self.buffer = buffer


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer
