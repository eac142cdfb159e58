"""Faust's Kafka transport, with the consumer on the worker's event loop, its fetches bounded in
time and batched, and its per-message costs cut (the hand-over to the streams, the producer
buffer's size).

The consumer on the loop. Faust runs aiokafka's consumer in a thread of its own, with its own
event loop, and every fetch crosses to the worker's loop through a queue and a future. Both
threads run Python, so they pass the GIL between them: under a steady load (and 10 ms fetches)
the worker's loop blocked some 370 times a second against 50-140 without the thread, each time
to be woken and wait for a core again, and the thread took 0.1 cores beside it.
:class:`InLoopConsumer` runs the same consumer on the worker's loop. In three alternated pairs
at the same load it cut the p99 latency at 6,720 events/s by half or more, and drained as fast
or up to a quarter faster (bench/PROFILE.md, session 16). What the thread is for in Faust,
heartbeats sent while the loop is blocked, this worker does not need: its loop gives way at
every batch. ``PROCESSOR_CONSUMER_THREAD`` brings the thread back.

Fetch wait. Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. aiokafka keeps one fetch request in flight per broker, and leaves out of it every
partition whose fetched records have not been consumed yet; once those records are older than its
prefetch backoff (100 ms) it sends a request for the remaining partitions anyway. When those are
all quiet (the re-key and contacts topics, usually), the broker holds the request for the whole
wait, and the busy partitions cannot be fetched until it returns: events sat up to 1.5 s before
the agent saw them (bench/PROFILE.md). With the wait bounded, such a request comes back within
``PROCESSOR_FETCH_MAX_WAIT_MS`` (5 ms by default).

Fetch size. With aiokafka's ``fetch_min_bytes=1`` the broker answers a fetch as soon as one
record is there, so under a steady load every fetch carried a handful of events and the
consumer's thread, its hop to the event loop and every agent batch were paid per handful: at
1,100 events/s the worker was 0.85 cores busy, a third of it in the consumer thread. With
``PROCESSOR_FETCH_MIN_BYTES`` (64 KiB by default) the broker holds a fetch until that much is
there or the wait is up, so a fetch carries up to the wait's events: with 20 ms, 0.61 cores, and
the p99 at 1,800 events/s fell from ~350 ms to ~110 ms. A backlog fills it at once, so draining
is not slowed. Once the worker's CPU per event had fallen to a third of that, a 10 ms wait cost
5-10% more CPU at half load and took ~10 ms off the median latency (bench/PROFILE.md, session
12); with the consumer on the loop, 5 ms cost ~11% more of the loop's CPU at the same load and
took 6-10 ms off the median, and lowered the p99 at both load levels (session 16). Both are
settings (:mod:`processor.settings`): an operator with CPU to spare may trade some
of it for latency.

Per-message wait. Faust's consumer hands every message to its streams through
``wait_first(callback(message), suspend_flow.wait())``, so that a rebalance can abandon a message
stuck behind a full stream buffer. ``mode``'s ``wait_first`` makes four tasks, an
``asyncio.wait`` and three cancellations for it: ~60 us a message on this machine, for a callback
that almost always finishes without waiting at all. :meth:`Consumer.wait_first` runs the callback
at once; only when it has to wait does it race it against the suspension, exactly as before.

Fetches handed over whole. Faust's drain loop hands each message to the streams on its own: per
message a ``Message``, an ``Event``, the conductor's callback (flow control, the producer's
buffer, a reference count, the decode) and a put into the stream's queue, and the stream then
takes it out again on its own. For a channel whose reader takes a batch at a time
(:meth:`processor.streams.Stream.batches`, which marks its channel with a
:class:`~processor.streams.ChunkInbox`), :meth:`Consumer._drain_messages` hands over the records
of each fetched partition as one :class:`~processor.streams.Chunk`, with the same checks (read
offsets, offset gaps, the consumer generation, flow control, the commit trigger) made once per
chunk where Faust makes them per message. Every other channel (the contacts agent's, the
tables' changelogs) gets its messages one at a time, exactly as from Faust's loop.

Fetches and seeks take turns (:meth:`Consumer._deliver_fetch`): a seek moves where reading resumes
(the seek to the committed offsets that ends Faust's recovery, among others), and the records of
a fetch made before it are read again from there; handed over after it, they would move the read
offset past the new copies, which would then be dropped as read, and a hand-over in the middle of
it would have its read offset set back under it (tests/integration/test_resilience.py, a worker
joining mid-backlog). A chunk is still handed over only if nothing has moved the partition's
reading while it waited, a backstop for whatever moves it without taking turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.transport.producer import ProducerBuffer as FaustProducerBuffer
from mode.services import Service, WaitArgT, WaitResults
from mode.utils.futures import maybe_async

from processor.streams import Chunk, ChunkInbox

#: How long the drain loop waits for a chunk to be taken before it looks again at the queue (a
#: rebalance can empty it without any chunk being taken).
CHUNK_WAIT_SECONDS = 0.1


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
        consumer._fetch_max_wait_ms, consumer._fetch_min_bytes = transport.app.fetch
        return consumer


class InLoopConsumer(ConsumerThread):
    """aiokafka's consumer on the worker's own event loop, without Faust's thread around it.

    Faust's thread service is started and stopped as a plain service here, and a call meant for
    the thread is awaited where it is made. aiokafka runs on one event loop by design; Faust's
    thread is there so that heartbeats go on while the loop is blocked, which this worker's loop
    never is for long (a batch is some tens of ms).
    """

    # Faust's thread sets the shutdown flag from the thread as it ends; nothing else does here.
    wait_for_shutdown = False

    def __init__(self, consumer: Any, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

    # mode's ServiceThread starts a thread (start, maybe_start), sets the stopped flag through
    # the thread's loop, and leaves stopping the children, futures and exit stacks to the thread
    # as it ends (the three _stop_* hooks do nothing). Here each is a plain service's. Its stop
    # needs nothing of ours: it only adds stopping a thread, which is never started here.

    async def start(self) -> None:
        await Service.start(self)

    async def maybe_start(self) -> bool:
        return await Service.maybe_start(self)

    async def on_stop(self) -> None:
        # What the thread runs as it ends: the method queue (if any) and then aiokafka stopped.
        await self.on_thread_stop()

    def _stopped_set(self) -> None:
        Service._stopped_set(self)

    async def _stop_children(self) -> None:
        await Service._stop_children(self)

    async def _stop_futures(self) -> None:
        await Service._stop_futures(self)

    async def _stop_exit_stacks(self) -> None:
        await Service._stop_exit_stacks(self)

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        await maybe_async(fun(*args, **kwargs))


class Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Held while a fetch is made and handed over, and while a seek moves where reading
        # resumes; see _deliver_fetch.
        self._reading = asyncio.Lock()

    def _new_consumer_thread(self) -> ConsumerThread:
        if cast(Any, self.app).consumer_thread:  # processor.app.App
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)
        return InLoopConsumer(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        async with self._reading:
            await super().perform_seek()

    async def seek(self, partition: Any, offset: int) -> None:
        async with self._reading:
            await super().seek(partition, offset)

    async def seek_wait(self, partitions: Any) -> None:
        # The recovery's seek of the changelog partitions to the table's own offsets.
        async with self._reading:
            await super().seek_wait(partitions)

    async def _drain_messages(self, fetcher: Any) -> None:
        # Faust's loop (faust.transport.consumer.Consumer._drain_messages), with each fetch
        # delivered by _deliver_fetch.
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self._deliver_fetch()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_fetch(self) -> None:
        """One fetch (Faust's ``getmany``), made and handed over while no seek runs.

        Faust's seek to the committed offsets (:meth:`perform_seek`, at the end of every
        recovery) moves aiokafka's position partition by partition, with a request to the broker
        before each, and sets the read offsets of them all once it is done. A fetch handed over
        in between was read from the new position, yet the read offset it moved is then set back:
        the next fetch, past it, counted the offsets in between as a gap (acked without being
        handed over), and a chunk dropped in that window was never read again
        (tests/integration/test_resilience.py, a worker joining mid-backlog). With the consumer in
        Faust's thread the window is there too, only narrower. So the two take turns.
        """
        # Before the fetch, as in Faust's loop (its getmany is a generator, started after this):
        # a seek or rebalance pending on the loop goes first, so what is fetched is read after it.
        await self.sleep(0)
        if self.should_stop:
            return
        if not self.flow_active:
            # Outside the lock: what resumes the flow (a recovery) may seek before it does. An
            # asyncio.Event, which mode's wait takes though its types say otherwise (as Faust's).
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
            return
        async with self._reading:
            if not self.flow_active or self.should_stop:
                return
            records, active = await self._wait_next_records(1.0)
            if records is None or self.should_stop:
                return
            if self.flow_active:
                await self._deliver_records(records, active)
                return
        self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
        try:
            await self.perform_seek()
        except Exception as exc:  # noqa: BLE001 - logged and carried on, as Faust's getmany
            self.log.warning(f"exception performing seek when flow not active {exc}")

    async def _deliver_records(self, records: Any, active: set[Any] | None) -> None:
        """The records of chunk-taking channels handed over a fetched partition at a time, the
        others one message at a time."""
        generation = self.app.consumer_generation_id
        tp_index = cast(Any, self.app.topics)._tp_index  # the conductor's channels by partition
        one_by_one: dict[Any, list[Any]] = {}
        for tp, tp_records in records.items():
            deliverable = self._deliverable(tp, active, generation)
            if deliverable is False:
                break
            if deliverable is None:
                continue
            inbox = _inbox_of(tp_index.get(tp))
            if inbox is None:
                one_by_one[tp] = tp_records
            else:
                await self._hand_over(tp, tp_records, inbox, generation)
        if one_by_one:
            await self._deliver_one_by_one(one_by_one, active, generation)

    def _deliverable(self, tp: Any, active: set[Any] | None, generation: int) -> bool | None:
        """False to stop delivering this fetch (a rebalance began); None to skip the partition."""
        if not self.flow_active or self.app.consumer_generation_id != generation:
            return False
        if active is None or tp in active or tp in self._buffered_partitions:
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            return True
        return None

    async def _hand_over(
        self, tp: Any, records: Iterable[Any], inbox: ChunkInbox, generation: int
    ) -> None:
        read_offset = self._read_offset
        r_offset = fetched_after = read_offset[tp]
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        to_message = self._to_message
        create_event = self.app.create_event
        chunk = Chunk()
        for record in records:
            offset = record.offset
            if r_offset is not None and offset < r_offset:
                continue  # before the read offset: Faust drops it too
            if r_offset and offset - r_offset > 1 and acks_enabled:
                # Offsets that will never come (compaction, transaction markers) count as acked,
                # or the committed offset could never pass them.
                await self._add_gap(tp, r_offset + 1, offset)
            message = to_message(tp, record)
            message.refcount = 1  # one channel, as the conductor's incref would count
            chunk.append(create_event(message.key, message.value, message.headers, message))
            r_offset = offset
        if chunk:
            await self._commit_if_due()
            if not await self._room(inbox, len(chunk), generation) or (
                read_offset[tp] != fetched_after
            ):
                # A rebalance came first, or the reading was moved meanwhile (seeks wait for
                # this hand-over, so only something that does not take turns): these records
                # are read again from where it resumes; handing them over now, or moving the
                # read offset past them, would drop those copies as already read, and with them
                # the commits of everything after.
                return
            inbox.put(chunk)
        read_offset[tp] = r_offset

    async def _commit_if_due(self) -> None:
        """Faust's count trigger: a commit once enough events were acked since the last."""
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def _room(self, inbox: ChunkInbox, events: int, generation: int) -> bool:
        """Waits until the inbox has room for ``events`` more (the stream buffer's back pressure);
        False when a rebalance came first (the chunk is then dropped, as Faust drops the message
        in hand: it is fetched again afterwards)."""
        app = self.app
        buffer = app.producer.buffer
        if buffer.size > buffer.max_messages:
            await self.wait_first(buffer.wait_until_ebb(), self.suspend_flow.wait())
        while True:
            if (
                self.should_stop
                or self.suspend_flow.is_set()
                or not app.flow_control.is_active()
                or app.consumer_generation_id != generation
            ):
                return False
            if inbox.has_room(events):
                return True
            await inbox.wait_taken(CHUNK_WAIT_SECONDS)

    async def _deliver_one_by_one(
        self, records: dict[Any, list[Any]], active: set[Any] | None, generation: int
    ) -> None:
        """Faust's own per-message delivery, for the channels that do not take chunks."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        since_yield = 0
        for tp, record in self.scheduler.iterate(records):
            deliverable = self._deliverable(tp, active, generation)
            if deliverable is False:
                break
            if deliverable is None:
                continue
            message = self._to_message(tp, record)
            since_yield += 1
            if since_yield > 100:
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is None or offset >= r_offset:
                if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                await self._commit_if_due()
                await self.wait_first(callback(message), self.suspend_flow.wait())
                if self.app.consumer_generation_id != generation or read_offset[tp] != r_offset:
                    # A rebalance or the reading moved meanwhile, as in _hand_over: the rest is read
                    # again from where it resumes (Faust's loop sets the offset anyway).
                    return
                read_offset[tp] = offset

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


def _inbox_of(channels: Any) -> ChunkInbox | None:
    """The inbox of the one channel that reads a partition, if it takes chunks."""
    if channels is None or len(channels) != 1:
        return None
    (channel,) = channels
    inbox: ChunkInbox | None = getattr(channel, "chunk_inbox", None)
    return inbox


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
