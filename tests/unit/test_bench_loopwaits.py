"""bench.loopwaits: a thread's time off its core, read from `perf sched script` lines."""

from __future__ import annotations

import pytest

from bench.loopwaits import render, sleep_bucket, thread_kind, waits

LOOP = 100


def switch(at: float, prev: int, state: str, next_comm: str, next_pid: int) -> str:
    return (
        f"          python {prev:>5} [000] {at:.6f}:       sched:sched_switch: prev_comm=python "
        f"prev_pid={prev} prev_prio=120 prev_state={state} ==> next_comm={next_comm} "
        f"next_pid={next_pid} next_prio=120"
    )


def waking(at: float, comm: str, tid: int, pid: int) -> str:
    return (
        f"  {comm:>14} {tid:>5} [001] {at:.6f}:       sched:sched_waking: comm=python "
        f"pid={pid} prio=120 target_cpu=000"
    )


TRACE = [
    # Preempted by a broker thread for 2 ms.
    switch(10.000, LOOP, "R", "data-plane-kafk", 7),
    switch(10.002, 7, "S", "python", LOOP),
    # Preempted (R+) by another of the broker's threads for 1 ms.
    switch(10.010, LOOP, "R+", "data-plane-kafk", 8),
    switch(10.011, 8, "S", "python", LOOP),
    # Asleep 5 ms until the consumer thread woke it, then 1 ms waiting for the core.
    switch(10.020, LOOP, "S", "swapper/0", 0),
    waking(10.025, "python", 101, LOOP),
    waking(10.0255, "redis-server", 9, LOOP),  # a second waking of the same sleep: not counted
    switch(10.026, 0, "R", "python", LOOP),
    # Other threads' switches and wakings change nothing.
    waking(10.027, "python", 101, 55),
    switch(10.030, 55, "S", "python", 56),
    "garbage that perf never writes",
]


def test_gaps_are_split_into_preempted_asleep_and_queued() -> None:
    result = waits(TRACE, LOOP)
    assert result.span == pytest.approx(0.030)
    assert result.preemptions == 2
    assert result.preempted == pytest.approx(0.003)
    assert result.sleeps == 1
    assert result.asleep == pytest.approx(0.005)
    assert result.queued_after_wakeup == pytest.approx(0.001)
    assert result.sleeps_by_length == {">= 5 ms": 1}
    assert result.slept_by_length[">= 5 ms"] == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.00005, "< 0.1 ms"),
        (0.0005, "< 1 ms"),
        (0.0049, "< 5 ms"),
        (0.005, ">= 5 ms"),
        (2, ">= 5 ms"),
    ],
)
def test_sleep_lengths_fall_in_buckets(seconds: float, bucket: str) -> None:
    assert sleep_bucket(seconds) == bucket


def test_who_took_the_core_and_who_woke_the_thread() -> None:
    result = waits(TRACE, LOOP)
    assert result.preempted_by == {"data-plane-kafk": 2}
    assert result.preempted_for["data-plane-kafk"] == pytest.approx(0.003)
    assert result.woken_by == {"python/101": 1}
    text = render(result)
    assert "10.0% of the time  (2 times)" in text  # preempted: 3 ms of 30
    assert "python/101" in text


def test_thread_names_lose_their_numbers() -> None:
    assert thread_kind("kworker/u8:1") == "kworker/u#:#"
    assert thread_kind(" rdk:broker1 ") == "rdk:broker#"


def test_a_lost_return_is_reported_and_its_gap_left_out() -> None:
    lost = [
        switch(10.000, LOOP, "S", "swapper/0", 0),
        waking(10.001, "python", 101, LOOP),
        # Its switch-in was lost; the next thing seen is the thread leaving again.
        switch(10.010, LOOP, "R", "data-plane-kafk", 7),
        switch(10.012, 7, "S", "python", LOOP),
    ]
    result = waits(lost, LOOP)
    assert result.unmatched == 1
    assert (result.sleeps, result.preemptions) == (0, 1)
    assert result.preempted == pytest.approx(0.002)
    assert result.woken_by == {}
    assert "1 times it left its core with no return seen" in render(result)


def test_a_trace_without_the_thread_is_all_zero() -> None:
    result = waits(TRACE, 999)
    assert (result.preemptions, result.sleeps, result.preempted) == (0, 0, 0.0)
