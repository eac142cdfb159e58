"""The benchmark's reading of the whole machine's CPU (busy and stolen cores over a span) and of
the worker's CPU by thread group."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from bench.machine import (
    MachineCpu,
    Reading,
    between,
    cpu_waiting_seconds,
    parse_task_stat,
    peer_counters,
    per_second,
    process_cpu_seconds,
    queued_seconds,
    share,
    thread_counters,
    thread_group,
    thread_rates,
)


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


def test_a_span_between_two_readings_reads_this_machine_and_this_process() -> None:
    def own_cpu() -> float:
        return time.process_time()

    before = Reading.now(own_cpu, lambda: thread_counters(os.getpid()))
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass  # one core busy, for the span to see
    figures = between(before, Reading.now(own_cpu, lambda: thread_counters(os.getpid())))
    # Read from the kernel's counters, in ticks: some slack on the upper bound.
    assert 0.0 < figures["machineBusyCores"] <= 1.2 * (psutil.cpu_count() or 1)
    assert figures["machineStealCores"] >= 0.0
    assert 0.5 < figures["workerCpuCores"] <= 1.2
    assert figures["workerLoopCores"] > 0.5


def test_per_second_gives_each_span_the_second_that_holds_its_middle() -> None:
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


def test_per_second_leaves_out_a_span_cut_short_at_the_end() -> None:
    # The level ends mid-second: over a few ticks of the counters, its figures were noise
    # (a run reported 0.0 cores busy on the machine and 1.49 for the worker in one).
    readings = [
        Reading(0.0, Times(user=0), 0.0),
        Reading(1.0, Times(user=1.2), 0.6),
        Reading(1.05, Times(user=1.2), 0.67),
    ]
    assert sorted(per_second(readings, t0=0.0)) == [0]


def test_per_second_carries_the_thread_groups_when_read() -> None:
    readings = [
        Reading(0.0, Times(), 1.0, {"loop": 1.0, "rocksdb": 0.2, "other": 0.1}),
        Reading(2.0, Times(user=3.0), 2.5, {"loop": 2.8, "rocksdb": 0.4, "other": 0.2}),
    ]
    assert per_second(readings, t0=0.0)[1] == pytest.approx(
        {
            "machineBusyCores": 1.5,
            "machineStealCores": 0.0,
            "workerCpuCores": 0.75,
            "workerLoopCores": 0.9,
            "workerRocksdbCores": 0.1,
            "workerOtherCores": 0.05,
        }
    )


def test_a_task_stat_line_gives_the_name_and_user_plus_system_ticks() -> None:
    # A name may hold spaces and parentheses; utime and stime are fields 14 and 15.
    line = "4242 (rocksdb:low) (x)) S 1 2 3 4 5 6 7 8 9 10 170 30 11 12 20 0 9 0 99 1 2 3\n"
    assert parse_task_stat(line) == ("rocksdb:low) (x)", 200)


@pytest.mark.parametrize(
    ("tid", "name", "group"),
    [
        (100, "python", "loop"),
        (101, "rocksdb:low", "rocksdb"),
        (102, "rocksdb:high", "rocksdb"),
        (103, "python", "other"),
    ],
)
def test_threads_are_grouped_as_loop_rocksdb_or_other(tid: int, name: str, group: str) -> None:
    assert thread_group(tid, pid=100, name=name) == group


def test_thread_rates_are_cores_per_group_and_never_negative() -> None:
    # A thread that ended takes its seconds with it: its group shrinks, which is not -x cores.
    before = {"loop": 10.0, "rocksdb": 1.0, "other": 3.0, "loopBlocked": 100, "loopPreempted": 7}
    after = {"loop": 11.0, "rocksdb": 1.5, "other": 2.0, "loopBlocked": 900, "loopPreempted": 47}
    assert thread_rates(before, after, seconds=2.0) == {
        "workerLoopCores": 0.5,
        "workerRocksdbCores": 0.25,
        "workerOtherCores": 0.0,
        "workerLoopBlockedPerSecond": 400,
        "workerLoopPreemptedPerSecond": 20,
    }
    assert thread_rates({}, after, seconds=2.0) == {}
    # Where the kernel keeps schedstat, the loop's wait for a core, as a share of the time.
    queued = thread_rates({**before, "loopQueued": 4.0}, {**after, "loopQueued": 4.6}, 2.0)
    assert queued["workerLoopQueued"] == 0.3


def test_a_threads_wait_for_a_core_is_the_second_schedstat_field() -> None:
    assert queued_seconds("2000000000 1500000000 300\n") == 1.5


def test_thread_counters_reads_this_process_by_group() -> None:
    def spin() -> None:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass

    before = thread_counters(os.getpid())
    spinner = threading.Thread(target=spin)
    spinner.start()
    spinner.join()
    spin()
    after = thread_counters(os.getpid())
    # The main thread is the loop; the ended spinner took its seconds with it.
    assert after["loop"] - before["loop"] > 0.1
    assert after["rocksdb"] == 0.0
    # Waiting in join() blocked the main thread at least once.
    assert after["loopBlocked"] > before["loopBlocked"]
    assert after["loopPreempted"] >= before["loopPreempted"]
    if Path(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat").exists():
        assert after["loopQueued"] >= before["loopQueued"] >= 0.0
    assert thread_counters(-1) == {}


def test_the_share_of_time_a_thread_waited_for_a_core_comes_from_two_pressure_readings() -> None:
    cpu = share(Times(), Times(user=1.5), seconds=2, waiting=(10.0, 10.8))
    assert cpu.waiting_share == pytest.approx(0.4)
    assert cpu.as_dict()["machineCpuWaiting"] == 0.4
    # Without the kernel's pressure information the field is left out, not reported as 0.
    assert "machineCpuWaiting" not in share(Times(), Times(), seconds=2).as_dict()
    assert share(Times(), Times(), seconds=2, waiting=(None, 3.0)).waiting_share is None


def test_per_second_carries_the_waiting_share_when_read() -> None:
    readings = [Reading(0.0, Times(), 0.0, waiting=5.0), Reading(1.0, Times(), 0.0, waiting=5.25)]
    assert per_second(readings, t0=0.0)[0]["machineCpuWaiting"] == 0.25


def test_this_machine_reports_cpu_pressure_if_its_kernel_has_it() -> None:
    waited = cpu_waiting_seconds()
    if os.path.exists("/proc/pressure/cpu"):
        assert waited is not None and waited >= 0.0
    else:
        assert waited is None


def _ended_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_process_cpu_seconds_grow_with_its_work_and_are_none_once_it_is_gone() -> None:
    before = process_cpu_seconds(os.getpid())
    # Until this process has used 0.3 s of CPU, however long a busy machine takes to give it.
    until = time.process_time() + 0.3
    while time.process_time() < until:
        pass
    after = process_cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.2
    assert process_cpu_seconds(_ended_pid()) is None


def test_peer_counters_read_each_live_process_and_leave_out_an_ended_one() -> None:
    seconds = peer_counters({"bench": os.getpid(), "broker": _ended_pid()})()
    assert list(seconds) == ["bench"]
    assert seconds["bench"] > 0.0


def test_between_gives_the_cores_of_each_peer_read_at_both_ends() -> None:
    before = Reading(10.0, Times(), 0.0, peers={"broker": 3.0, "bench": 1.0, "redis": 0.5})
    after = Reading(12.0, Times(), 0.0, peers={"broker": 4.0, "bench": 1.5})
    figures = between(before, after)
    assert figures["brokerCpuCores"] == pytest.approx(0.5)
    assert figures["benchCpuCores"] == pytest.approx(0.25)
    assert "redisCpuCores" not in figures  # gone before the second reading
