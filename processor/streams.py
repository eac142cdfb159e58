"""Faust's stream, taken a batch at a time, of events decoded at no cost.

Faust's ``Stream.take_events`` fills its batch from a background task that iterates the stream
one event at a time: per event a hop through the event loop (``sleep(0)``), a coroutine for the
buffering processor, and, when the batch is handed back, one ack coroutine. :meth:`Stream.batches`
gives the agent the same batches straight from the channel's queue, doing per event only what
the stream itself must: drop events of an earlier consumer generation (a rebalance happened after
they were fetched), track the message for acks, run the stream's processors (Faust's agent test
wrapper installs one), and tell the sensors. Under a steady load the worker needs ~10% less CPU
for it (bench/PROFILE.md, session 4); draining a backlog, where Faust's hops were cheap, the same.

The consumer hands the events of each fetched partition over as one :class:`Chunk` to a stream
that takes batches of raw events (:mod:`processor.transport`); a batch unpacks chunks and takes
their events one by one as it takes single ones, carrying what is past its size to the next.

A batch takes what has arrived and goes on while the consumer is still handing its fetch over
(a chunk per partition, all in one turn of the event loop; or, to a stream that takes them one at
a time, up to 100 messages between its turns), up to ``within`` after the first event. It never
waits for the next fetch: under a steady load a fetch carries up to 5 ms of events
(:mod:`processor.transport`), and waiting out a fixed window after the last of them added that
window to every event (bench/PROFILE.md, session 5).

It also acks differently, on purpose: a batch is acked once the agent comes back for the next
one, never when the agent's task is cancelled half-way through it (``take_events`` acks in a
``finally`` around its ``yield``, so such a cancellation acks events whose outputs were never
sent). Unacked events are consumed again after the restart.

:class:`RawSchema` is the schema of the topics the agents read: their records are parsed by our
own code from the bytes, so Faust's decoding (a codec lookup and call for the key and for the
value of every message, ~4% of the worker) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.exceptions import Skip
from mode.utils.futures import maybe_async


class RawSchema(faust.Schema):
    """Keys and values as the bytes on the wire (None stays None), as the ``raw`` codec gives."""

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, **kwargs: Any) -> Any:
        # kwargs are the decode-error callbacks and propagate default: raw bytes cannot fail.
        create_event = app.create_event

        async def decode(message: Any, *, propagate: bool = False) -> Any:
            return create_event(message.key, message.value, message.headers, message)

        return decode


class Chunk(list[Any]):
    """The events of one fetched partition, handed to a stream's queue as one item
    (:mod:`processor.transport`)."""


class ChunkInbox:
    """Set on a channel whose reader takes :class:`Chunk` items; the drain loop hands over
    through it, and waits on it while the reader is behind.

    Its room is counted in events, as Faust's stream buffer is (``stream_buffer_maxsize``, the
    queue's own bound, which counts items, chunks here): the drain loop waits while the
    events queued and those it holds would not fit.
    """

    def __init__(self, queue: Any, capacity: int) -> None:
        self.queue = queue
        self.capacity = capacity
        self._taken = asyncio.Event()

    def put(self, chunk: Chunk) -> None:
        self.queue.put_nowait(chunk)

    def queued(self) -> int:
        """Events handed over and not yet taken, counted in the queue itself (a rebalance
        empties it without anything being taken; a few chunks at most)."""
        return sum(len(item) for item in self.queue._queue if type(item) is Chunk)

    def has_room(self, events: int) -> bool:
        queued = self.queued()
        return queued == 0 or queued + events <= self.capacity

    def taken(self) -> None:
        self._taken.set()

    async def wait_taken(self, timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a deadline
        self._taken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._taken.wait(), timeout)


class Stream(faust.Stream):
    """The stream class of the app (Faust's ``Stream`` setting): Faust's, plus :meth:`batches`."""

    async def batches(self, size: int, within: float) -> AsyncIterator[list[Any]]:
        """Lists of up to ``size`` events (``faust.Event``): what has arrived, and what the
        consumer is still handing over, for at most ``within`` seconds after the first; the
        last one when the agent stops.

        For a stream over one channel, as an agent's is. The events of a batch are acked when
        the caller asks for the next batch.
        """
        channel: Any = aiter(self.channel)  # the iterator clone the conductor delivers to
        queue = channel.queue
        inbox = None
        if isinstance(getattr(channel, "schema", None), RawSchema):
            # The drain loop makes our raw events itself, so it may hand them over in chunks.
            capacity = queue.maxsize or self.app.conf.stream_buffer_maxsize
            inbox = channel.chunk_inbox = ChunkInbox(queue, capacity)
        loop = asyncio.get_running_loop()
        started = await self.maybe_start()
        taken: list[tuple[Any, Any]] = []  # (event, sensor state)
        unpacked: deque[Any] = deque()  # events of a chunk, not yet taken
        deadline = 0.0
        ended = False
        try:
            while not ended and not self.should_stop:
                try:
                    while len(taken) < size and not self.should_stop:
                        if unpacked:
                            event = unpacked.popleft()
                        elif not queue.empty():
                            event = queue.get_nowait()
                        elif not taken:
                            event = await queue.get()  # nothing in hand: as long as it takes
                        elif loop.time() < deadline:
                            # The consumer hands a fetch over in parts, yielding to the loop
                            # between them: a turn of the loop lets the next part in. A turn
                            # that brings nothing means the fetch is all here; waiting on for
                            # the next one would add its wait to every event in hand.
                            await asyncio.sleep(0)
                            if queue.empty():
                                break
                            continue
                        else:
                            break
                        if type(event) is Chunk:
                            unpacked.extend(event)
                            assert inbox is not None
                            inbox.taken()
                            continue
                        entry = self._admit(event)
                        if entry is None or (
                            # None of ours; Faust's agent test wrapper installs one.
                            self._processors and not await self._processed(*entry)
                        ):
                            continue
                        if not taken:
                            deadline = loop.time() + within
                        taken.append(entry)
                except StopAsyncIteration:
                    # How Faust stops an agent: thrown into its channel's queue. The batch in
                    # hand is still given (and acked once done), as Faust's take_events does.
                    ended = True
                if not taken:
                    continue  # stopped with nothing in hand
                events = [event for event, _ in taken]
                self.events_total += len(events)
                yield events
                # Back for more: the batch is done.
                for event, state in taken:
                    self._ack(event, state)
                taken = []
        finally:
            if inbox is not None:
                del channel.chunk_inbox
            if started:
                await self.stop()
                self.service_reset()

    def _admit(self, event: Any) -> tuple[Any, Any] | None:
        """The event and its sensor state, or None when it is to be dropped."""
        app = self.app
        message = event.message
        if not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            # Fetched before a rebalance: the new assignment reads it again from the committed
            # offset. Not acked, as Faust's stream does not ack it either.
            return None
        if not message.tracked and app.topics.acks_enabled_for(message.topic):
            message.tracked = True
            app.consumer.track_message(message)
        return event, app.sensors.on_stream_event_in(message.tp, message.offset, self, event)

    async def _processed(self, event: Any, state: Any) -> bool:
        """Runs the stream's processors on the event; False (and acked) when one skips it."""
        value = event.value
        try:
            for processor in self._processors:
                value = await maybe_async(processor(value))
        except Skip:
            self._ack(event, state)
            return False
        return True

    def _ack(self, event: Any, state: Any) -> None:
        message = event.message
        last = event.ack()
        self.app.sensors.on_stream_event_out(message.tp, message.offset, self, event, state)
        if last:
            self.app.sensors.on_message_out(message.tp, message.offset, message)
