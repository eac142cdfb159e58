"""Phase 3: end-to-end latency under open-loop load.

Open loop: every send time is planned before the load starts (``t0 + i / rate``) and the
producer never waits for the worker. If the worker falls behind, the records queue up in Kafka
and their latency shows it; a closed loop would slow down with the worker and hide exactly that.
Latency runs from a record's *planned* send time (so a late producer cannot hide a slow worker
either) to the moment a consumer here sees its output: the orders.rfm record of the delivered
order, or the dead letter of a bad event.
"""

from __future__ import annotations

import gc
import itertools
import math
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from bench import brokergc, loadgen
from bench.infra import Deployment, Offsets, log
from bench.machine import Reading, between, per_second


@dataclass(frozen=True)
class Sample:
    #: Planned send time, in seconds since the level's first planned send.
    at: float
    #: Planned send to output seen here: the latency.
    total_ms: float
    #: Planned send to the output's CreateTime, stamped when the worker handed it to its Kafka
    #: producer: how much of the latency is the worker's, the rest being delivery to us.
    worker_ms: float
    #: Planned send to the sender's call to produce it: how late the load generator itself was
    #: (it shares the two cores with the worker and the broker).
    send_lag_ms: float = 0.0

    @property
    def from_send_ms(self) -> float:
        """The latency from the record's actual produce call, the sender's own lateness left
        out."""
        return self.total_ms - self.send_lag_ms


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1), in ms."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(math.ceil(q * len(ordered)) - 1, 0)], 1)


def _figures(latencies_ms: list[float]) -> dict[str, float | None]:
    return {
        "p50Ms": _percentile(latencies_ms, 0.50),
        "p95Ms": _percentile(latencies_ms, 0.95),
        "p99Ms": _percentile(latencies_ms, 0.99),
        "maxMs": round(max(latencies_ms), 1) if latencies_ms else None,
    }


@dataclass
class LevelResult:
    fraction: float
    target_rate: float
    seconds: float
    sent: int
    achieved_rate: float
    #: Outputs awaited after the warm-up: the ones the level's figures count.
    expected: int
    #: Every sample, the warm-up's included (those with ``at < warmup_seconds``).
    all_samples: list[Sample]
    max_send_lag_ms: float
    warmup_seconds: float = 0.0
    #: CPU of the machine and the worker, keyed by second of the schedule (bench.machine).
    cpu_by_second: dict[int, dict[str, float]] = field(default_factory=dict)
    #: CPU of the machine, the worker and the other processes over the level and its drain
    #: (bench.machine.between), from its first planned send: making the level's records before
    #: it took the benchmark seconds of CPU with the worker idle.
    cpu: dict[str, float] = field(default_factory=dict)
    #: Wall-clock time of the first planned send (second 0 of the timeline).
    started_at: float = 0.0
    #: The broker's GC pauses from ``started_at`` to the level's end; None when its GC log is
    #: not ours to read (a broker not started by the benchmark).
    broker_gc: list[brokergc.Pause] | None = None

    @property
    def samples(self) -> list[Sample]:
        """The samples the level's figures count: those planned after the warm-up."""
        return [s for s in self.all_samples if s.at >= self.warmup_seconds]

    @property
    def warmup_samples(self) -> list[Sample]:
        return [s for s in self.all_samples if s.at < self.warmup_seconds]

    def timeline(self) -> list[dict[str, Any]]:
        """Per second of the schedule, the warm-up's included: outputs, median and worst latency,
        the CPU of the machine and the worker in that second, and the broker's GC pauses that
        ended in it. Stalls (a commit, a flush, a rebalance, the broker's GC) show here as a
        second whose worst case stands out; the CPU says whether the cores were full then."""
        buckets: dict[int, list[Sample]] = {}
        for sample in self.all_samples:
            buckets.setdefault(int(sample.at), []).append(sample)
        gc_ms = (
            None if self.broker_gc is None else brokergc.per_second(self.broker_gc, self.started_at)
        )
        return [
            {
                "second": second,
                "warmup": second < self.warmup_seconds,
                "measured": len(samples),
                "p50Ms": _percentile([s.total_ms for s in samples], 0.50),
                "maxMs": round(max(s.total_ms for s in samples), 1),
                "workerP50Ms": _percentile([s.worker_ms for s in samples], 0.50),
                "sendLagMaxMs": round(max(s.send_lag_ms for s in samples), 1),
                **self.cpu_by_second.get(second, {}),
                **({} if gc_ms is None else {"brokerGcPauseMs": gc_ms.get(second, 0.0)}),
            }
            for second, samples in sorted(buckets.items())
        ]

    def _broker_gc_summary(self) -> dict[str, Any]:
        """The broker's pauses after the warm-up, as the level's figures count its samples."""
        if self.broker_gc is None:
            return brokergc.summary(None)
        counted = self.started_at + self.warmup_seconds
        return brokergc.summary(brokergc.within(self.broker_gc, counted, math.inf))

    def as_dict(self) -> dict[str, Any]:
        # Filtered once: the level's counted samples, a few hundred thousand at 80% load.
        counted = self.samples
        worker_ms = [s.worker_ms for s in counted]
        warmup = self.warmup_samples
        return {
            "fraction": self.fraction,
            # Second 0 of the timeline on the wall clock, to line it up with other logs
            # (RocksDB's LOG, the broker's, a probe's).
            "startedAt": datetime.fromtimestamp(self.started_at, UTC).isoformat(
                timespec="milliseconds"
            ),
            "targetEventsPerSecond": round(self.target_rate, 1),
            "achievedEventsPerSecond": round(self.achieved_rate, 1),
            "seconds": round(self.seconds, 2),
            "warmupSeconds": self.warmup_seconds,
            "sent": self.sent,
            "expected": self.expected,
            "measured": len(counted),
            "missing": self.expected - len(counted),
            **_figures([s.total_ms for s in counted]),
            "workerP50Ms": _percentile(worker_ms, 0.50),
            "workerP99Ms": _percentile(worker_ms, 0.99),
            # The sender's own lateness, and the latency without it (from each record's produce
            # call rather than its planned time).
            "sendLagP99Ms": _percentile([s.send_lag_ms for s in counted], 0.99),
            "fromSend": _figures([s.from_send_ms for s in counted]),
            "warmup": {"measured": len(warmup), **_figures([s.total_ms for s in warmup])},
            "maxSendLagMs": round(self.max_send_lag_ms, 1),
            **self._broker_gc_summary(),
            "timeline": self.timeline(),
            **self.cpu,
        }


class _Outputs(threading.Thread):
    """Reads orders.rfm and orders.dlq from their current end and stamps each awaited output
    with the time it was seen."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(name="latency-outputs", daemon=True)
        self.rfm = deployment.topic("orders_rfm")
        self.dlq = deployment.topic("orders_dlq")
        self.lock = threading.Lock()
        self.planned: dict[tuple[str, str], float] = {}
        self.samples: dict[tuple[str, str], Sample] = {}
        #: Set by the sender: its first planned send (monotonic clock).
        self.t0 = 0.0
        # Kafka timestamps are wall-clock; planned times are monotonic.
        self._wall_offset = time.time() - time.monotonic()
        self._stop_event = threading.Event()
        #: Set once the reader is connected and polling its partitions.
        self.ready = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": deployment.servers.bootstrap,
                "group.id": f"{deployment.prefix}-latency-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                # Small waits: a fetch that idles on the broker would add to every latency.
                "fetch.wait.max.ms": 10,
            }
        )
        # Assign at the current ends: earlier outputs (the backlog's) are not ours to time.
        self._consumer.list_topics(self.rfm, timeout=30)  # connected before it is timed
        offsets = Offsets(deployment.servers.bootstrap, f"{deployment.prefix}-latency")
        try:
            self._consumer.assign(
                [
                    TopicPartition(topic, p, high)
                    for topic in (self.rfm, self.dlq)
                    for p, high in offsets.high(topic).items()
                ]
            )
        finally:
            offsets.close()

    def expect(self, what: tuple[str, str], planned: float) -> None:
        with self.lock:
            self.planned[what] = planned

    def done(self) -> int:
        with self.lock:
            return len(self.samples)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                # poll() returns with the first record; consume() would wait out its timeout
                # unless the batch filled, adding up to that timeout to every sample.
                first = self._consumer.poll(0.05)
                seen = time.monotonic()
                self.ready.set()
                if first is None:
                    continue
                messages = [first, *self._consumer.consume(num_messages=1000, timeout=0)]
                for message in messages:
                    if message.error():
                        continue
                    what = self._identify(message)
                    if what is None:
                        continue
                    created = message.timestamp()[1] / 1000 - self._wall_offset
                    with self.lock:
                        planned = self.planned.get(what)
                        if planned is not None and what not in self.samples:
                            self.samples[what] = Sample(
                                at=planned - self.t0,
                                total_ms=(seen - planned) * 1000,
                                worker_ms=(created - planned) * 1000,
                            )
        finally:
            self._consumer.close()

    def _identify(self, message: Any) -> tuple[str, str] | None:
        if message.topic() == self.rfm:
            value = orjson.loads(message.value())
            return ("rfm", str(value.get("externalOrderId")))
        # A dead letter keeps the original record's key, which is unique per bad probe.
        key = message.key()
        return None if key is None else ("dlq", key.decode(errors="replace"))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def run_level(
    deployment: Deployment,
    *,
    fraction: float,
    rate: float,
    seconds: float,
    warmup: float,
    contacts: int,
    seed: int,
    drain_timeout: float,
    worker_cpu_seconds: Callable[[], float],
    worker_threads: Callable[[], Mapping[str, float]],
    compression: str,
    linger_ms: float,
) -> LevelResult:
    """Send ``rate`` events/s for ``warmup + seconds`` on a fixed schedule and time their
    outputs; the figures count those planned after the first ``warmup`` seconds. The producer's
    ``compression`` and ``linger_ms`` come from the command line (bench.run has the defaults)."""
    count = max(int(rate * (warmup + seconds)), 2)
    probes = loadgen.latency_load(
        count, contacts, tag=f"{deployment.prefix}-l{round(fraction * 100)}", seed=seed
    )
    outputs = _Outputs(deployment)
    outputs.start()
    producer = Producer(
        {
            "bootstrap.servers": deployment.servers.bootstrap,
            "partitioner": "murmur2_random",  # as the processor expects (see processor.producer)
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": linger_ms,
        }
    )
    # Both clients connected before the clock starts: once, the first outputs of a level waited
    # 580 ms on a reader still connecting, and counted it as latency.
    producer.list_topics(deployment.events_topic, timeout=30)
    if not outputs.ready.wait(30):
        raise RuntimeError("the latency reader did not start within 30 s")
    sender = _Sender(producer, deployment.events_topic, outputs, probes, rate)
    wall_offset = time.time() - time.monotonic()
    # The probes and everything loaded so far live through the level: out of the collector's
    # way, and no collection during it. A full collection here walked them all and held the
    # GIL for a few hundred ms, stalling the sender and the output reader alike, which the
    # level then counted as the worker's latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    readings: list[Reading] = []
    peers = deployment.peers()
    try:
        sender.start()
        # On the schedule's seconds, so that each span is one second of the timeline.
        for second in itertools.count():
            sender.join(max(0.0, sender.t0 + second - time.monotonic()))
            readings.append(Reading.now(worker_cpu_seconds, worker_threads, peers))
            if not sender.is_alive():
                break
            if second and second % 5 == 0:
                log(
                    f"phase 3 ({fraction:.0%}): sent {sender.sent:,}/{len(probes):,}, "
                    f"{outputs.done():,} outputs seen"
                )
        awaited = [i for i, p in enumerate(probes) if p.expect is not None]
        deadline = time.monotonic() + drain_timeout
        while outputs.done() < len(awaited) and time.monotonic() < deadline:
            time.sleep(0.1)
        if outputs.done() < len(awaited):
            log(f"phase 3 ({fraction:.0%}): {len(awaited) - outputs.done()} outputs never came")
    finally:
        outputs.stop()
        gc.enable()
        gc.unfreeze()
    # Over the level and its drain: a loop near 1.0 means the worker (one Python event loop) was
    # saturated at this rate, whatever its backlog rate was.
    cpu = between(readings[0], Reading.now(worker_cpu_seconds, worker_threads, peers))
    with outputs.lock:
        # Probe i is planned at i / rate (see _Sender), as its sample's `at` is.
        samples = [
            replace(s, send_lag_ms=sender.lags[round(s.at * rate)] * 1000)
            for s in outputs.samples.values()
        ]
    return LevelResult(
        fraction=fraction,
        target_rate=rate,
        seconds=sender.elapsed,
        sent=sender.sent,
        achieved_rate=sender.sent / sender.elapsed if sender.elapsed > 0 else 0.0,
        # Probe i is planned at i / rate (see _Sender), as its sample's `at` will be.
        expected=sum(1 for i in awaited if i / rate >= warmup),
        all_samples=samples,
        max_send_lag_ms=sender.max_lag * 1000,
        warmup_seconds=warmup,
        cpu_by_second=per_second(readings, sender.t0),
        cpu=cpu,
        started_at=sender.t0 + wall_offset,
    )


#: Shortest sleep of the open-loop sender. A sender that woke for every record (7,200 times a
#: second at the 80% level) was, with its producer's thread and the broker's threads serving it,
#: most of what took the worker's event loop off its core, 1,700 times a second and a fifth of its
#: time, on the two cores they share (bench/PROFILE.md, session 11). Records sent late by up to a
#: tick count it in their latency: it runs from the planned time.
SEND_TICK_SECONDS = 0.001


class _Sender(threading.Thread):
    """The open-loop producer: record i goes out at t0 + i / rate, whatever happened before."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        outputs: _Outputs,
        probes: list[loadgen.Probe],
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(name="open-loop-producer", daemon=True)
        self.producer, self.topic, self.outputs = producer, topic, outputs
        self.probes, self.rate = probes, rate
        self.clock, self.sleep = clock, sleep
        self.sent = 0
        self.elapsed = 0.0
        #: Monotonic time of the first planned send.
        self.t0 = 0.0
        self.max_lag = 0.0
        #: Per record sent, in seconds: its produce call's time minus its planned time.
        self.lags = array("d")

    def start(self) -> None:
        # Set here, not in run(), so that the caller can read the schedule as soon as this returns.
        self.t0 = self.outputs.t0 = self.clock() + 0.2
        super().start()

    def run(self) -> None:
        start = self.t0
        for i, probe in enumerate(self.probes):
            planned = start + i / self.rate
            delay = planned - self.clock()
            if delay > 0:
                # At least a tick: faster than that, what is due goes out together.
                self.sleep(max(delay, SEND_TICK_SECONDS))
            if probe.expect is not None:
                # Before the send, so the output can never arrive before its entry does.
                self.outputs.expect(probe.expect, planned)
            sent_at = self.clock()
            while True:
                try:
                    self.producer.produce(
                        self.topic, key=probe.record.key, value=probe.record.value
                    )
                    break
                except BufferError:
                    self.producer.poll(0.01)
            self.producer.poll(0)
            self.lags.append(sent_at - planned)
            self.max_lag = max(self.max_lag, self.clock() - planned)
            self.sent += 1
        self.elapsed = self.clock() - start
        self.producer.flush(30)
