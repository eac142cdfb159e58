"""The latency phase's figures: the warm-up is timed and reported, but not counted."""

from __future__ import annotations

from bench.latency import LevelResult, Sample


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
