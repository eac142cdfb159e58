"""The latency phase's figures: the warm-up is timed and reported, but not counted."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from bench import latency, loadgen
from bench.latency import LevelResult, Sample, _Sender


def level(samples: list[Sample], warmup: float) -> LevelResult:
    return LevelResult(
        fraction=0.5,
        target_rate=10.0,
        seconds=3.0,
        sent=len(samples),
        achieved_rate=10.0,
        expected=sum(1 for s in samples if s.at >= warmup),
        all_samples=samples,
        max_send_lag_ms=0.0,
        warmup_seconds=warmup,
    )


def test_the_warmup_is_reported_apart_and_left_out_of_the_levels_figures() -> None:
    # A slow first second (the warm-up), then steady outputs.
    slow = [Sample(at=i / 10, total_ms=500.0 + i, worker_ms=400.0) for i in range(10)]
    steady = [Sample(at=1 + i / 10, total_ms=20.0 + i, worker_ms=10.0 + i) for i in range(20)]
    figures = level(slow + steady, warmup=1.0).as_dict()

    assert figures["measured"] == 20 and figures["missing"] == 0
    assert figures["p50Ms"] == 29.0 and figures["p99Ms"] == 39.0 and figures["maxMs"] == 39.0
    assert figures["workerP50Ms"] == 19.0 and figures["workerP99Ms"] == 29.0
    assert figures["warmup"] == {
        "measured": 10,
        "p50Ms": 504.0,
        "p95Ms": 509.0,
        "p99Ms": 509.0,
        "maxMs": 509.0,
    }
    timeline = figures["timeline"]
    assert [(t["second"], t["warmup"]) for t in timeline] == [(0, True), (1, False), (2, False)]


def test_without_a_warmup_every_sample_counts() -> None:
    samples = [Sample(at=i / 10, total_ms=float(i), worker_ms=0.0) for i in range(10)]
    figures = level(samples, warmup=0.0).as_dict()
    assert figures["measured"] == 10 and figures["p99Ms"] == 9.0
    assert figures["warmup"] == {
        "measured": 0,
        "p50Ms": None,
        "p95Ms": None,
        "p99Ms": None,
        "maxMs": None,
    }


def test_each_timeline_second_carries_the_cpu_read_in_it() -> None:
    samples = [Sample(at=i / 10, total_ms=float(i), worker_ms=0.0) for i in range(20)]
    result = level(samples, warmup=0.0)
    result.cpu_by_second = {
        1: {"machineBusyCores": 1.9, "machineStealCores": 0.0, "workerCpuCores": 0.7}
    }
    first, second = result.as_dict()["timeline"]
    # A second with no reading (the first, before the schedule's first span ends) has none.
    assert "machineBusyCores" not in first
    assert second["machineBusyCores"] == 1.9 and second["workerCpuCores"] == 0.7


def test_the_senders_own_lateness_is_reported_and_taken_out_of_the_from_send_figures() -> None:
    # Twenty outputs 30 ms after their planned send; the sender produced the last two 25 ms late.
    samples = [Sample(at=i / 10, total_ms=30.0, worker_ms=20.0) for i in range(18)]
    samples += [
        Sample(at=1.8 + i / 10, total_ms=30.0, worker_ms=20.0, send_lag_ms=25.0) for i in range(2)
    ]
    figures = level(samples, warmup=0.0).as_dict()

    assert figures["p99Ms"] == 30.0 and figures["sendLagP99Ms"] == 25.0
    assert figures["fromSend"]["p50Ms"] == 30.0 and figures["fromSend"]["p99Ms"] == 30.0
    assert figures["fromSend"]["maxMs"] == 30.0 and min(s.from_send_ms for s in samples) == 5.0
    assert [t["sendLagMaxMs"] for t in figures["timeline"]] == [0.0, 25.0]


class _Clock:
    """The sender's clock and sleep: a sleep moves the clock on, and a record produced costs a
    tenth of a millisecond."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _Producer:
    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.sent_at: list[float] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.sent_at.append(self.clock.now)
        self.clock.now += 0.0001

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def _send(rate: float, count: int) -> tuple[_Clock, _Sender]:
    clock = _Clock()
    outputs = MagicMock()
    record = loadgen.Record(key=b"k", value=b"v", kind="x")
    probes = [loadgen.Probe(record, expect=None) for _ in range(count)]
    sender = _Sender(
        _Producer(clock),  # type: ignore[arg-type]
        "topic",
        outputs,
        probes,
        rate,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    sender.start()
    sender.join()
    return clock, sender


def test_the_sender_wakes_at_most_once_a_tick_and_is_never_early() -> None:
    clock, sender = _send(rate=10_000, count=2_000)
    producer = sender.producer
    assert sender.sent == 2_000
    assert min(clock.sleeps) >= latency.SEND_TICK_SECONDS
    # 0.2 s of schedule in ticks of 1 ms: about 200 wakes, not one per record.
    assert len(clock.sleeps) <= 0.2 / latency.SEND_TICK_SECONDS + 2
    planned = [sender.t0 + i / 10_000 for i in range(2_000)]
    lateness = [sent - due for sent, due in zip(producer.sent_at, planned, strict=True)]  # type: ignore[attr-defined]
    assert min(lateness) >= 0
    assert sender.max_lag <= latency.SEND_TICK_SECONDS + 0.001
    # Each record's lateness is kept, as of its produce call.
    assert list(sender.lags) == pytest.approx(lateness, abs=1e-9)


def test_a_slow_sender_sleeps_until_each_record_is_due() -> None:
    _, sender = _send(rate=100, count=50)
    planned = [sender.t0 + i / 100 for i in range(50)]
    sent_at = sender.producer.sent_at  # type: ignore[attr-defined]
    assert sent_at == pytest.approx(planned, abs=1e-9)
