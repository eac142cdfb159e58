"""The benchmark's reading of the whole machine's CPU: busy and stolen cores over a span."""

from __future__ import annotations

import time
from typing import NamedTuple

import psutil
import pytest

from bench.machine import MachineCpu, Reading, Span, per_second, share


class Times(NamedTuple):
    user: float = 0.0
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0
    guest: float = 0.0


def test_busy_counts_user_nice_system_and_interrupts_but_not_idle_or_iowait() -> None:
    before = Times(user=100, nice=1, system=20, idle=500, iowait=7, irq=1, softirq=2, steal=3)
    after = Times(user=115, nice=2, system=23, idle=530, iowait=20, irq=1.5, softirq=2.5, steal=4)
    cpu = share(before, after, seconds=10)
    assert cpu.busy_cores == pytest.approx((15 + 1 + 3 + 0.5 + 0.5) / 10)
    assert cpu.steal_cores == pytest.approx(0.1)


def test_guest_time_is_not_counted_twice() -> None:
    # Linux counts a guest's time in user as well.
    cpu = share(Times(user=10, guest=0), Times(user=20, guest=10), seconds=5)
    assert cpu.busy_cores == pytest.approx(2.0)


def test_an_empty_span_is_zero_rather_than_a_division_by_zero() -> None:
    assert share(Times(), Times(user=1), seconds=0) == MachineCpu(0.0, 0.0)


def test_fields_are_rounded_for_the_report() -> None:
    assert MachineCpu(1.23456, 0.0149).as_dict() == {
        "machineBusyCores": 1.23,
        "machineStealCores": 0.01,
    }


def test_a_span_reads_this_machine() -> None:
    span = Span()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass  # one core busy, for the span to see
    cpu = span.cpu()
    # Read from the kernel's counters, in ticks: some slack on the upper bound.
    assert 0.0 < cpu.busy_cores <= 1.2 * (psutil.cpu_count() or 1)
    assert cpu.steal_cores >= 0.0


def test_per_second_gives_each_span_the_second_it_starts_in() -> None:
    t0 = 100.0
    readings = [
        Reading(99.0, Times(user=0), 0.0),  # before the schedule: not counted
        Reading(100.1, Times(user=1.0), 0.5),
        Reading(101.1, Times(user=2.5, steal=0.1), 1.0),
        Reading(102.1, Times(user=3.0, steal=0.1), 1.9),
    ]
    spans = per_second(readings, t0)
    assert sorted(spans) == [0, 1]
    assert spans[0] == pytest.approx(
        {"machineBusyCores": 1.5, "machineStealCores": 0.1, "workerCpuCores": 0.5}
    )
    assert spans[1] == pytest.approx(
        {"machineBusyCores": 0.5, "machineStealCores": 0.0, "workerCpuCores": 0.9}
    )


def test_per_second_skips_readings_taken_at_the_same_moment() -> None:
    readings = [Reading(5.0, Times(user=1), 0.0), Reading(5.0, Times(user=2), 1.0)]
    assert per_second(readings, t0=0.0) == {}
