"""The whole machine's CPU over a span of a run: the cores that were busy (the broker, Redis, the
worker, the benchmark, anything else), and the cores the hypervisor gave to other guests instead
(steal). This machine's speed has swung by a factor of two between runs of the same code; steal
says whether a run shared its host, and busy whether the two cores were full.

And the worker's CPU by thread group: its event loop is one Python thread, so a loop near one
core is a worker that cannot go faster, whatever the machine has left; RocksDB's flushes and
compactions run beside it (and aiokafka's consumer thread, when the worker runs one).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil


class CpuTimes(Protocol):
    """The fields of ``psutil.cpu_times()`` used here (seconds since boot, all cores)."""

    @property
    def user(self) -> float: ...
    @property
    def nice(self) -> float: ...
    @property
    def system(self) -> float: ...
    @property
    def irq(self) -> float: ...
    @property
    def softirq(self) -> float: ...
    @property
    def steal(self) -> float: ...


@dataclass(frozen=True)
class MachineCpu:
    busy_cores: float
    steal_cores: float
    #: Share of the time some runnable thread waited for a core (None where the kernel has no
    #: pressure stall information).
    waiting_share: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "machineBusyCores": round(self.busy_cores, 2),
            "machineStealCores": round(self.steal_cores, 2),
            **(
                {"machineCpuWaiting": round(self.waiting_share, 2)}
                if self.waiting_share is not None
                else {}
            ),
        }


def cpu_waiting_seconds() -> float | None:
    """Seconds since boot in which some runnable thread waited for a core: the kernel's CPU
    pressure ("some" total of ``/proc/pressure/cpu``), or None without it. Busy cores under two
    do not say that no thread waited: bursts of several runnable threads queue on two cores."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(first.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def share(
    before: CpuTimes,
    after: CpuTimes,
    seconds: float,
    waiting: tuple[float | None, float | None] = (None, None),
) -> MachineCpu:
    """Cores busy and stolen on average between two readings ``seconds`` apart, and the share
    of that time some thread waited for a core, from two ``cpu_waiting_seconds()``."""
    if seconds <= 0:
        return MachineCpu(0.0, 0.0)

    def busy(t: CpuTimes) -> float:
        # Guest time is counted in user already; iowait is idle time.
        return t.user + t.nice + t.system + t.irq + t.softirq

    waited_before, waited_after = waiting
    return MachineCpu(
        busy_cores=(busy(after) - busy(before)) / seconds,
        steal_cores=(after.steal - before.steal) / seconds,
        waiting_share=(
            (waited_after - waited_before) / seconds
            if waited_before is not None and waited_after is not None
            else None
        ),
    )


#: The worker's threads, grouped: its event loop (the process's main thread: the agents, Redis,
#: the producer's calls), RocksDB's background threads (RocksDB names them "rocksdb:..."), and
#: the rest (aiokafka's consumer thread with PROCESSOR_CONSUMER_THREAD=true, executors).
THREAD_GROUPS = ("loop", "rocksdb", "other")


def thread_group(tid: int, pid: int, name: str) -> str:
    if tid == pid:
        return "loop"
    if name.startswith("rocksdb"):
        return "rocksdb"
    return "other"


def parse_task_stat(text: str) -> tuple[str, int]:
    """The thread's name and its CPU ticks (user + system) from a ``/proc/PID/task/TID/stat``."""
    # The name may hold spaces and parentheses itself: it ends at the last ")".
    end = text.rindex(")")
    fields = text[end + 2 :].split()
    # fields[0] is the state, field 3 of proc(5); utime and stime are fields 14 and 15.
    return text[text.index("(") + 1 : end], int(fields[11]) + int(fields[12])


#: Counters of the event loop's thread besides its CPU: the times it blocked (waited for I/O, a
#: timer or the GIL: voluntary context switches) and was preempted while it could have run on.
LOOP_SWITCHES = {
    "loopBlocked": "voluntary_ctxt_switches",
    "loopPreempted": "nonvoluntary_ctxt_switches",
}


def queued_seconds(schedstat: str) -> float:
    """Seconds a thread has spent ready to run while waiting for a core, from its
    ``/proc/PID/task/TID/schedstat`` (run, run-queue wait, in ns; time slices)."""
    return int(schedstat.split()[1]) / 1e9


def thread_counters(pid: int) -> dict[str, float]:
    """CPU seconds of each thread group of process ``pid`` so far, the event loop's
    :data:`LOOP_SWITCHES`, and the seconds the loop waited for a core (``loopQueued``, where the
    kernel keeps it); empty once the process is gone. A thread that has ended takes its seconds
    with it, so a group can shrink between readings."""
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = os.listdir(task_dir)
        status = (task_dir / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    schedstat = _read_or_none(task_dir / str(pid) / "schedstat")  # not in every kernel
    ticks = dict.fromkeys(THREAD_GROUPS, 0)
    for tid in tids:
        try:
            name, used = parse_task_stat((task_dir / tid / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended since the listing
        ticks[thread_group(int(tid), pid, name)] += used
    hz = os.sysconf("SC_CLK_TCK")
    counters: dict[str, float] = {group: used / hz for group, used in ticks.items()}
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    for key, field_name in LOOP_SWITCHES.items():
        counters[key] = float(fields[field_name])
    if schedstat is not None:
        counters["loopQueued"] = queued_seconds(schedstat)
    return counters


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None


def thread_rates(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """Between two :func:`thread_counters` readings: the cores each thread group used on average
    (``workerLoopCores``, ``workerRocksdbCores``, ``workerOtherCores``), the event loop's
    switches a second (``workerLoopBlockedPerSecond``, ``workerLoopPreemptedPerSecond``) and the
    share of the time it waited for a core (``workerLoopQueued``); empty if either reading is."""
    if seconds <= 0 or not before or not after:
        return {}

    def rate(key: str) -> float:
        return max(0.0, after.get(key, 0.0) - before.get(key, 0.0)) / seconds

    return {
        **{f"worker{group.capitalize()}Cores": round(rate(group), 2) for group in THREAD_GROUPS},
        **{
            f"worker{key[0].upper()}{key[1:]}PerSecond": round(rate(key))
            for key in LOOP_SWITCHES
            if key in before and key in after
        },
        **(
            {"workerLoopQueued": round(rate("loopQueued"), 2)}
            if "loopQueued" in before and "loopQueued" in after
            else {}
        ),
    }


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all its threads) process ``pid`` has used; None once it is
    gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return None
    return float(times.user + times.system)


def peer_counters(pids: Mapping[str, int]) -> Callable[[], dict[str, float]]:
    """A reader of the CPU seconds of the processes that share the machine with the worker, by
    name (``broker``, ``redis``, ``bench``): on two cores, what they take the worker's loop
    waits for, and they all work harder as the load rises."""

    def read() -> dict[str, float]:
        seconds = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        return {name: value for name, value in seconds.items() if value is not None}

    return read


@dataclass(frozen=True)
class Reading:
    """The machine's and one process's CPU counters at a moment (monotonic clock)."""

    at: float
    times: CpuTimes
    process_cpu_seconds: float
    #: The process's :func:`thread_counters`, if read.
    threads: Mapping[str, float] = field(default_factory=dict)
    #: :func:`cpu_waiting_seconds` at the moment.
    waiting: float | None = None
    #: The other processes' CPU seconds (:func:`peer_counters`), if read.
    peers: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def now(
        cls,
        process_cpu_seconds: Callable[[], float],
        threads: Callable[[], Mapping[str, float]] | None = None,
        peers: Callable[[], Mapping[str, float]] | None = None,
    ) -> Reading:
        return cls(
            time.monotonic(),
            psutil.cpu_times(),
            process_cpu_seconds(),
            threads() if threads is not None else {},
            cpu_waiting_seconds(),
            peers() if peers is not None else {},
        )


#: A span shorter than this (the last one, cut short when the level ends) is left out: over a
#: few ticks of the kernel's CPU counters its figures are noise.
MIN_SPAN_SECONDS = 0.5


def between(before: Reading, after: Reading) -> dict[str, float]:
    """The figures of the span between two readings: the machine's busy and stolen cores and its
    share of time with a thread waiting for a core, the process's cores (``workerCpuCores``),
    its thread groups' (:func:`thread_rates`) and the other processes' (``brokerCpuCores``,
    ``redisCpuCores``, ``benchCpuCores``) where both readings have them."""
    seconds = after.at - before.at
    machine = share(before.times, after.times, seconds, (before.waiting, after.waiting))
    process = (
        (after.process_cpu_seconds - before.process_cpu_seconds) / seconds if seconds > 0 else 0.0
    )
    return {
        **machine.as_dict(),
        "workerCpuCores": round(process, 2),
        **thread_rates(before.threads, after.threads, seconds),
        **{
            f"{name}CpuCores": round(max(0.0, after.peers[name] - used) / seconds, 2)
            for name, used in before.peers.items()
            if name in after.peers and seconds > 0
        },
    }


def per_second(readings: Sequence[Reading], t0: float) -> dict[int, dict[str, float]]:
    """:func:`between` each pair of consecutive readings (a second apart when they are taken on
    the schedule's seconds), keyed by the second, counted from ``t0``, that holds its middle."""
    spans: dict[int, dict[str, float]] = {}
    for before, after in itertools.pairwise(readings):
        seconds, middle = after.at - before.at, (before.at + after.at) / 2 - t0
        if seconds >= MIN_SPAN_SECONDS and middle >= 0:
            spans[int(middle)] = between(before, after)
    return spans
