"""Phases 0-2: load the backlog, measure the plain-Kafka ceiling, measure the real worker.

Phase 3 (latency under open-loop load) is in :mod:`bench.latency`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import loadgen
from bench.infra import Deployment, Offsets, create_topic, log, remaining
from bench.machine import Reading, between
from bench.worker import Worker, count_orders, disk_bytes
from processor.directory import ContactDirectory
from processor.producer import EventProducer

# Faust's defaults for the worker's producer; phase 1 uses the same, so the ratio between the
# two phases is the cost of the processing, not of different batching.
PRODUCER_LINGER_MS = 5


@dataclass
class Throughput:
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "eventsPerSecond": round(self.per_second, 1),
        }


class Progress:
    """Logs "<what>: n/total (rate/s)" at most every ``every`` seconds."""

    def __init__(self, what: str, total: int, every: float = 5.0) -> None:
        self.what, self.total, self.every = what, total, every
        self.start = self._last = time.monotonic()

    def __call__(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            rate = done / (now - self.start) if now > self.start else 0.0
            log(f"{self.what}: {done:,}/{self.total:,} ({rate:,.0f}/s)")


# -- phase 0 ------------------------------------------------------------------------------------


def import_contacts(deployment: Deployment, count: int, batch: int = 2000) -> Throughput:
    """The contacts into Redis through the processor's own directory code."""

    async def run() -> None:
        directory = ContactDirectory.from_url(deployment.servers.redis_url, deployment.redis_prefix)
        progress = Progress("phase 0: contacts imported", count)
        try:
            chunk: list[Any] = []
            done = 0
            for contact in loadgen.contacts(count):
                chunk.append(contact)
                if len(chunk) >= batch:
                    done += await directory.upsert_many(chunk)
                    chunk.clear()
                    progress(done)
            done += await directory.upsert_many(chunk)
            progress(done, force=True)
        finally:
            await directory.close()

    start = time.monotonic()
    asyncio.run(run())
    return Throughput(count, time.monotonic() - start)


def produce_backlog(
    deployment: Deployment, events: int, contacts: int, seed: int
) -> tuple[Throughput, loadgen.LoadStats]:
    """The backlog onto the events topic, keyed by externalOrderId and murmur2-partitioned,
    with the processor's own producer (what `processor produce` uses). Records are generated
    as they are sent, so a million of them never sit in memory at once."""
    stats = loadgen.LoadStats()
    records = ((r.key, r.value) for r in loadgen.backlog(events, contacts, seed=seed, stats=stats))
    progress = Progress("phase 0: events produced", events)
    producer = EventProducer(deployment.servers.bootstrap)
    start = time.monotonic()
    producer.send_all(
        deployment.events_topic, records, progress=progress, every=10_000, timeout=300
    )
    seconds = time.monotonic() - start
    progress(events, force=True)
    return Throughput(events, seconds), stats


# -- phase 1 ------------------------------------------------------------------------------------


def ceiling(deployment: Deployment, high: Mapping[int, int]) -> Throughput:
    """Read the backlog with a plain aiokafka consumer, parse each value, produce one record per
    event: what Python and aiokafka can do here with no Redis and no table."""
    sink = f"{deployment.prefix}.ceiling"
    create_topic(deployment.servers.bootstrap, sink, deployment.partitions)
    # uvloop, as the worker runs on it (processor.cli uses mode.loop.use("uvloop")).
    return uvloop.run(_ceiling(deployment, sink, high))


async def _ceiling(
    deployment: Deployment, sink: str, high: Mapping[int, int], chunk: int = 5000
) -> Throughput:
    total = sum(high.values())
    consumer = AIOKafkaConsumer(
        deployment.events_topic,
        bootstrap_servers=deployment.servers.bootstrap,
        group_id=deployment.ceiling_group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=deployment.servers.bootstrap, acks="all", linger_ms=PRODUCER_LINGER_MS
    )
    await producer.start()
    await consumer.start()
    progress = Progress("phase 1: events relayed", total)
    try:
        todo = {p: h for p, h in high.items() if h > 0}
        first: float | None = None
        count = 0
        in_flight: list[asyncio.Future[Any]] = []
        while todo:
            batches = await consumer.getmany(timeout_ms=1000, max_records=chunk)
            for tp, messages in batches.items():
                if not messages:
                    continue
                if first is None:
                    first = time.monotonic()
                for message in messages:
                    try:
                        value = orjson.dumps(orjson.loads(message.value))
                    except orjson.JSONDecodeError:
                        value = message.value  # a bad record is relayed as it came
                    # send() only queues the record; awaiting each delivery would make this
                    # a one-at-a-time loop, which is not the ceiling we want to know.
                    in_flight.append(await producer.send(sink, value, key=message.key))
                count += len(messages)
                if messages[-1].offset + 1 >= todo.get(tp.partition, 0):
                    todo.pop(tp.partition, None)
            if len(in_flight) >= chunk:
                # Bounded: a few thousand futures at a time, so memory stays flat.
                await asyncio.gather(*in_flight)
                in_flight.clear()
            progress(count)
        await asyncio.gather(*in_flight)
        await producer.flush()
        end = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    progress(count, force=True)
    return Throughput(count, end - (first or end))


# -- phase 2 ------------------------------------------------------------------------------------


@dataclass
class WorkerRun:
    throughput: Throughput
    startup_seconds: float
    committed_at_ready: int
    rekeyed: int
    #: The worker's and the machine's CPU over the drain (bench.machine.between).
    cpu: dict[str, float]
    peak_rss_bytes: int
    table_orders: int | None
    table_disk_bytes: int
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.throughput.as_dict(),
            "startupSeconds": round(self.startup_seconds, 2),
            "committedAtReady": self.committed_at_ready,
            "rekeyed": self.rekeyed,
            # Named as before the machine's figures joined it: cpuCores, not workerCpuCores.
            "cpuCores": self.cpu["workerCpuCores"],
            **{k: v for k, v in self.cpu.items() if k != "workerCpuCores"},
            "peakRssMb": round(self.peak_rss_bytes / 2**20, 1),
            "tableOrders": self.table_orders,
            "tableDiskMb": round(self.table_disk_bytes / 2**20, 1),
            "stats": self.stats,
        }


def worker_throughput(
    deployment: Deployment,
    worker: Worker,
    high: Mapping[int, int],
    *,
    stall_timeout: float = 120.0,
    poll: float = 0.5,
) -> WorkerRun:
    """Start the worker on the backlog; time it from "Worker ready" until its committed offsets
    reach the end of the events topic (and of the re-key topic, if anything was re-keyed)."""
    total = sum(high.values())
    offsets = Offsets(deployment.servers.bootstrap, deployment.app_id)
    rekeyed_topic = deployment.topic("orders_events_rekeyed")
    peers = deployment.peers()
    try:
        ready = worker.start()
        at_ready = Reading.now(worker.cpu_seconds, worker.thread_counters, peers)
        left = remaining(high, offsets.committed(deployment.events_topic))
        committed_at_ready = total - left
        log(
            f"phase 2: worker ready after {ready - worker.started_at:.1f}s "
            f"({committed_at_ready:,} events already committed)"
        )
        progress = Progress("phase 2: events committed by the worker", total)
        last_change, last_left = time.monotonic(), left
        while True:
            left = remaining(high, offsets.committed(deployment.events_topic))
            if left == 0:
                # Records re-keyed before the last commit are on the re-key topic by now (the
                # worker flushes its producer before committing), so its end is final here.
                rekey_high = offsets.high(rekeyed_topic)
                if remaining(rekey_high, offsets.committed(rekeyed_topic)) == 0:
                    break
            now = time.monotonic()
            if left != last_left:
                last_change, last_left = now, left
            elif now - last_change > stall_timeout:
                raise TimeoutError(
                    f"worker made no progress for {stall_timeout:.0f}s with {left:,} events "
                    f"left:\n{worker.tail()}"
                )
            if worker.proc is not None and worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited during phase 2:\n{worker.tail()}")
            progress(total - left)
            time.sleep(poll)
        done = time.monotonic()
        progress(total, force=True)
        at_end = Reading.now(worker.cpu_seconds, worker.thread_counters, peers)
        cpu = between(at_ready, at_end)
    finally:
        offsets.close()
    assert worker.memory is not None
    stats = worker.stats()
    table_orders = _try(lambda: count_orders(deployment.data_dir), "count the table's orders")
    return WorkerRun(
        throughput=Throughput(total - committed_at_ready, done - ready),
        startup_seconds=ready - worker.started_at,
        committed_at_ready=committed_at_ready,
        rekeyed=sum(rekey_high.values()),
        cpu=cpu,
        peak_rss_bytes=worker.memory.peak,
        table_orders=table_orders,
        table_disk_bytes=disk_bytes(deployment.data_dir),
        stats=stats,
    )


def _try(action: Callable[[], int], what: str) -> int | None:
    try:
        return action()
    # rocksdict raises a bare Exception for RocksDB errors; the run can go on without this.
    except Exception as exc:  # noqa: BLE001
        log(f"could not {what}: {exc}")
        return None
