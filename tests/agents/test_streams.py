"""processor.streams: Stream.batches in Faust's in-memory agent test context, and RawSchema.

An agent of a bare Faust app (our Stream class) records each batch it is given and, when told
to, holds it, so a test can look at the acks while the batch is in hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.exceptions import Skip

from processor.streams import Chunk, ChunkInbox, RawSchema, Stream
from tests.agents.support import close_unstarted_consumer, offline_processor, settled


@dataclass
class Recorder:
    batches: list[list[bytes]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    #: Cleared: the agent holds each batch until it is set.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.release.set()


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App(
        "test-streams",
        broker="kafka://127.0.0.1:1",  # never contacted: the test context feeds the agent
        store="memory://",
        Stream=Stream,
        autodiscover=False,
    )
    yield app
    close_unstarted_consumer(app)


def batcher(app: faust.App, size: int, within: float, name: str = "batcher") -> Recorder:
    recorder = Recorder()

    @app.agent(app.topic("events", value_serializer="raw"), name=name)
    async def agent(stream: Any) -> None:
        async for events in stream.batches(size, within):
            recorder.batches.append([event.value for event in events])
            recorder.events.extend(events)
            await recorder.release.wait()

    return recorder


async def test_what_has_arrived_is_one_batch_of_at_most_size(app: faust.App) -> None:
    recorder = batcher(app, size=2, within=0.01)
    async with app.agents["batcher"].test_context() as agent:
        for value in (b"1", b"2", b"3", b"4", b"5"):
            await agent.put(value, wait=False)
        await settled(lambda: sum(map(len, recorder.batches)) == 5)
    assert recorder.batches == [[b"1", b"2"], [b"3", b"4"], [b"5"]]


async def test_a_batch_comes_once_nothing_more_is_handed_over_not_after_its_window(
    app: faust.App,
) -> None:
    # A window of a minute: the batch must not wait it out when no more events are coming.
    recorder = batcher(app, size=100, within=60.0)
    async with app.agents["batcher"].test_context() as agent:
        await agent.put(b"alone")
        await settled(lambda: recorder.batches == [[b"alone"]])
        await agent.put(b"later")
        await settled(lambda: len(recorder.batches) == 2)
    assert recorder.batches == [[b"alone"], [b"later"]]


async def test_events_handed_over_across_turns_of_the_loop_are_one_batch(app: faust.App) -> None:
    # As the consumer hands a fetch over: a chunk of events, a turn of the loop, the next chunk.
    recorder = batcher(app, size=100, within=60.0)
    async with app.agents["batcher"].test_context() as agent:
        for value in (b"1", b"2", b"3"):
            await agent.put(value, wait=False)
        await asyncio.sleep(0)
        for value in (b"4", b"5", b"6"):
            await agent.put(value, wait=False)
        await settled(lambda: sum(map(len, recorder.batches)) == 6)
    assert recorder.batches == [[b"1", b"2", b"3", b"4", b"5", b"6"]]


async def test_a_batch_is_acked_when_the_agent_comes_back_for_the_next(app: faust.App) -> None:
    recorder = batcher(app, size=10, within=0.01)
    recorder.release.clear()
    async with app.agents["batcher"].test_context() as agent:
        await agent.put(b"a", wait=False)
        await agent.put(b"b", wait=False)
        await settled(lambda: recorder.batches == [[b"a", b"b"]])
        await asyncio.sleep(0.05)  # the agent is holding the batch
        assert [event.message.acked for event in recorder.events] == [False, False]
        recorder.release.set()
        await settled(lambda: all(event.message.acked for event in recorder.events))


async def test_a_batch_is_not_acked_when_the_agent_fails_on_it(app: faust.App) -> None:
    taken: list[Any] = []

    @app.agent(app.topic("events", value_serializer="raw"), name="failing")
    async def failing(stream: Any) -> None:
        async for events in stream.batches(10, 0.01):
            taken.extend(events)
            raise RuntimeError("the agent fails half-way")

    async with app.agents["failing"].test_context() as agent:
        await agent.put(b"a", wait=False)
        await settled(lambda: len(taken) == 1)
        await asyncio.sleep(0.05)
    assert not taken[0].message.acked


async def test_events_fetched_before_a_rebalance_are_dropped_unacked(app: faust.App) -> None:
    recorder = batcher(app, size=10, within=0.01)
    async with app.agents["batcher"].test_context() as agent:
        stale = await agent.put(b"stale", wait=False)
        app.consumer_generation_id += 1  # a rebalance, before the agent took the event
        await agent.put(b"fresh", wait=False)
        await settled(lambda: recorder.batches == [[b"fresh"]])
    assert not stale.message.acked


async def test_the_batch_in_hand_is_given_when_the_stream_stops(app: faust.App) -> None:
    recorder = batcher(app, size=10, within=60.0)
    async with app.agents["batcher"].test_context() as agent:
        await agent.put(b"in hand")  # returns once taken: the agent holds it for a turn more
        assert recorder.batches == []
    await settled(lambda: recorder.batches == [[b"in hand"]])


async def test_a_processor_may_skip_an_event_which_is_then_acked(app: faust.App) -> None:
    batches: list[list[bytes]] = []

    def no_noise(value: bytes) -> bytes:
        if value == b"noise":
            raise Skip()
        return value

    @app.agent(app.topic("events", value_serializer="raw"), name="filtering")
    async def filtering(stream: Any) -> None:
        stream.add_processor(no_noise)
        async for events in stream.batches(10, 0.01):
            batches.append([event.value for event in events])

    async with app.agents["filtering"].test_context() as agent:
        noise = await agent.put(b"noise", wait=False)
        await agent.put(b"signal", wait=False)
        await settled(lambda: batches == [[b"signal"]])
    assert noise.message.acked


async def inbox_of(channel: Any) -> ChunkInbox:
    """The inbox the stream's batches put on the channel it reads (a clone of ``channel``)."""
    for _ in range(500):
        for subscriber in list(channel._subscribers):
            inbox: ChunkInbox | None = getattr(subscriber, "chunk_inbox", None)
            if inbox is not None:
                return inbox
        await asyncio.sleep(0.01)
    raise AssertionError("no chunk inbox on the channel")


def chunk(app: faust.App, agent: Any, values: list[bytes]) -> Chunk:
    """A fetch of one partition, as the drain loop hands it over (processor.transport)."""
    events = Chunk()
    for offset, value in enumerate(values):
        message = agent.to_message(None, value, offset=offset)
        message.refcount = 1
        events.append(app.create_event(None, value, None, message))
    return events


async def test_chunks_are_taken_whole_in_batches_of_at_most_size(app: faust.App) -> None:
    recorder = batcher(app, size=2, within=0.01)
    channel = app.channel(schema=RawSchema())
    async with app.agents["batcher"].test_context(channel=channel) as agent:
        inbox = await inbox_of(channel)
        inbox.put(chunk(app, agent, [b"1", b"2", b"3"]))
        inbox.put(chunk(app, agent, [b"4"]))
        await settled(lambda: sum(map(len, recorder.batches)) == 4)
        await settled(lambda: all(event.message.acked for event in recorder.events[:2]))
    # The rest of a chunk past a batch's size goes first into the next batch.
    assert recorder.batches == [[b"1", b"2"], [b"3", b"4"]]


async def test_taking_a_chunk_makes_room_for_the_drain_loop(app: faust.App) -> None:
    recorder = batcher(app, size=10, within=0.01)
    recorder.release.clear()
    channel = app.channel(schema=RawSchema())
    async with app.agents["batcher"].test_context(channel=channel) as agent:
        inbox = await inbox_of(channel)
        inbox.put(chunk(app, agent, [b"a"]))
        await settled(lambda: recorder.batches == [[b"a"]])  # held: the agent is busy with it
        inbox.put(chunk(app, agent, [b"b", b"c"]))
        assert inbox.queued() == 2
        waiting = asyncio.ensure_future(inbox.wait_taken(5.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        recorder.release.set()
        await asyncio.wait_for(waiting, 5)
        assert inbox.queued() == 0
        await settled(lambda: recorder.batches == [[b"a"], [b"b", b"c"]])


async def test_only_a_stream_of_raw_events_takes_chunks_and_only_while_it_runs(
    app: faust.App,
) -> None:
    # The drain loop makes raw events itself; any other schema needs Faust's decode per message.
    batcher(app, size=10, within=0.01)
    raw: Any = app.channel(schema=RawSchema())
    other: Any = app.channel()
    async with app.agents["batcher"].test_context(channel=raw):
        await inbox_of(raw)
    assert not any(hasattr(subscriber, "chunk_inbox") for subscriber in raw._subscribers)
    async with app.agents["batcher"].test_context(channel=other) as agent:
        await agent.put(b"x")
        assert not any(hasattr(subscriber, "chunk_inbox") for subscriber in other._subscribers)


@pytest.mark.parametrize("key", [None, b"", b"k-1"])
@pytest.mark.parametrize("value", [None, b"", b'{"eventTypeKey": "orderCreated"}', b"\xff"])
async def test_raw_schema_gives_what_fausts_raw_codec_gives(
    app: faust.App, key: bytes | None, value: bytes | None
) -> None:
    message = faust.types.Message(
        topic="events",
        partition=1,
        offset=7,
        timestamp=1.0,
        timestamp_type=0,
        headers=[("h", b"v")],
        key=key,
        value=value,
        checksum=None,
    )
    faust_decode = faust.Schema(key_serializer="raw", value_serializer="raw").compile(app)
    ours = await RawSchema().compile(app)(message)
    theirs = await faust_decode(message)
    assert (ours.key, ours.value, ours.headers, ours.message) == (
        theirs.key,
        theirs.value,
        theirs.headers,
        message,
    )


def test_the_topics_agents_read_decode_raw(tmp_path: Path) -> None:
    with offline_processor(tmp_path) as processor:
        schemas = {
            role: type(getattr(processor.topics, role).schema)
            for role in ("events", "rekeyed", "contacts", "rfm", "dlq")
        }
    assert schemas == {
        "events": RawSchema,
        "rekeyed": RawSchema,
        "contacts": RawSchema,
        "rfm": faust.Schema,
        "dlq": faust.Schema,
    }
