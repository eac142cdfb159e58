"""The whole machine's CPU over a span of a run: the cores that were busy (the broker, Redis, the
worker, the benchmark, anything else), and the cores the hypervisor gave to other guests instead
(steal). This machine's speed has swung by a factor of two between runs of the same code; steal
says whether a run shared its host, and busy whether the two cores were full.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "machineBusyCores": round(self.busy_cores, 2),
            "machineStealCores": round(self.steal_cores, 2),
        }


def share(before: CpuTimes, after: CpuTimes, seconds: float) -> MachineCpu:
    """Cores busy and stolen on average between two readings ``seconds`` apart."""
    if seconds <= 0:
        return MachineCpu(0.0, 0.0)

    def busy(t: CpuTimes) -> float:
        # Guest time is counted in user already; iowait is idle time.
        return t.user + t.nice + t.system + t.irq + t.softirq

    return MachineCpu(
        busy_cores=(busy(after) - busy(before)) / seconds,
        steal_cores=(after.steal - before.steal) / seconds,
    )


class Span:
    """Started when made; :meth:`cpu` is the machine's CPU since then."""

    def __init__(self) -> None:
        self._times: CpuTimes = psutil.cpu_times()
        self._started = time.monotonic()

    def cpu(self) -> MachineCpu:
        return share(self._times, psutil.cpu_times(), time.monotonic() - self._started)


@dataclass(frozen=True)
class Reading:
    """The machine's and one process's CPU counters at a moment (monotonic clock)."""

    at: float
    times: CpuTimes
    process_cpu_seconds: float

    @classmethod
    def now(cls, process_cpu_seconds: Callable[[], float]) -> Reading:
        return cls(time.monotonic(), psutil.cpu_times(), process_cpu_seconds())


def per_second(readings: Sequence[Reading], t0: float) -> dict[int, dict[str, float]]:
    """For each span between consecutive readings (about a second each), keyed by the second,
    counted from ``t0``, in which it starts: the machine's busy and stolen cores and the
    process's cores."""
    spans: dict[int, dict[str, float]] = {}
    for before, after in itertools.pairwise(readings):
        seconds = after.at - before.at
        if seconds <= 0 or before.at < t0:
            continue
        machine = share(before.times, after.times, seconds)
        spans[int(before.at - t0)] = {
            **machine.as_dict(),
            "workerCpuCores": round(
                (after.process_cpu_seconds - before.process_cpu_seconds) / seconds, 2
            ),
        }
    return spans
