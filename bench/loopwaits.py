"""Where one thread's time off its core went, from the kernel's scheduler trace.

The benchmark reads how long the worker's event loop waited for a core (``workerLoopQueued``);
this says who had the core meanwhile, and who woke the loop when it slept (bench/PROFILE.md,
session 11). As root, during a latency level::

    perf sched record -a -o sched.data -- sleep 4
    perf sched script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
    .venv/bin/python -m bench.loopwaits sched.txt --tid <the worker's pid>

The worker's pid is its event loop's thread id. Each time the thread leaves its core the gap until
it runs again is counted as ``preempted`` (it could have run on: the thread that took the core is
named), ``asleep`` (blocked until something woke it: the waker is named) and ``woken, queued``
(woken, then waiting for a core).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_SWITCH = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<tid>\d+)\s+\[\d+\]\s+(?P<time>[\d.]+):\s+sched:sched_switch: "
    r"prev_comm=.*? prev_pid=(?P<prev>\d+) prev_prio=\d+ prev_state=(?P<state>\S+) ==> "
    r"next_comm=(?P<next_comm>.*?) next_pid=(?P<next>\d+)"
)
_WAKING = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<tid>\d+)\s+\[\d+\]\s+(?P<time>[\d.]+):\s+sched:sched_waking: "
    r"comm=.*? pid=(?P<pid>\d+) "
)


def thread_kind(comm: str) -> str:
    """A thread's name without its numbers: the broker's many network threads count as one."""
    return re.sub(r"\d+", "#", comm.strip())


@dataclass
class Waits:
    """A thread's time off its core over a trace, in seconds, and who had a part in it."""

    span: float = 0.0
    queued_after_wakeup: float = 0.0
    #: By kind of thread that took the core: the times it did.
    preempted_by: Counter[str] = field(default_factory=Counter)
    #: By kind of thread that took the core: the seconds the thread waited for it back.
    preempted_for: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    woken_by: Counter[str] = field(default_factory=Counter)
    #: Sleeps by length (:data:`SLEEP_BUCKETS`): how many, and their seconds.
    sleeps_by_length: Counter[str] = field(default_factory=Counter)
    slept_by_length: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    #: Times the thread left its core again with no return seen in between: the trace lost
    #: events (perf drops them when its buffers fill), and those gaps are not counted.
    unmatched: int = 0

    @property
    def preemptions(self) -> int:
        return sum(self.preempted_by.values())

    @property
    def preempted(self) -> float:
        return sum(self.preempted_for.values())

    @property
    def sleeps(self) -> int:
        return sum(self.sleeps_by_length.values())

    @property
    def asleep(self) -> float:
        return sum(self.slept_by_length.values())


#: Upper bounds of the sleep lengths counted apart, in seconds, and their names. Under 5 ms: a
#: thread waiting for the GIL is woken by its holder or after the switch interval (5 ms).
SLEEP_BUCKETS = (
    (0.0001, "< 0.1 ms"),
    (0.001, "< 1 ms"),
    (0.005, "< 5 ms"),
    (float("inf"), ">= 5 ms"),
)


def sleep_bucket(seconds: float) -> str:
    return next(name for bound, name in SLEEP_BUCKETS if seconds < bound)


def waits(lines: Iterable[str], tid: int) -> Waits:
    """Reads ``perf sched script`` lines (switches and wakings) for thread ``tid``."""
    me = str(tid)
    result = Waits()
    first = last = None
    left_at: float | None = None
    preempted_by: str | None = None
    woken_at: float | None = None
    waker: str | None = None
    for line in lines:
        switch = _SWITCH.match(line)
        if switch is not None:
            at = float(switch["time"])
            first = at if first is None else first
            last = at
            if switch["prev"] == me:
                if left_at is not None:
                    result.unmatched += 1
                left_at, woken_at, waker = at, None, None
                # R: still runnable when it lost the core (preempted); anything else: it blocked.
                runnable = switch["state"].startswith("R")
                preempted_by = thread_kind(switch["next_comm"]) if runnable else None
            elif switch["next"] == me and left_at is not None:
                if preempted_by is not None:
                    result.preempted_by[preempted_by] += 1
                    result.preempted_for[preempted_by] += at - left_at
                else:
                    woke = woken_at if woken_at is not None else at
                    bucket = sleep_bucket(woke - left_at)
                    result.sleeps_by_length[bucket] += 1
                    result.slept_by_length[bucket] += woke - left_at
                    result.queued_after_wakeup += at - woke
                    if waker is not None:
                        result.woken_by[waker] += 1
                left_at = None
            continue
        waking = _WAKING.match(line)
        if (
            waking is not None
            and waking["pid"] == me
            and left_at is not None
            and preempted_by is None
            and woken_at is None
        ):
            # The first waking of a sleep; later ones find it already runnable.
            woken_at = float(waking["time"])
            waker = f"{thread_kind(waking['comm'])}/{waking['tid']}"
    if first is not None and last is not None:
        result.span = last - first
    return result


def render(result: Waits, top: int = 12) -> str:
    span = result.span or 1.0
    lines = [f"trace of {result.span:.3f} s"]
    for name, seconds, count in (
        ("preempted", result.preempted, result.preemptions),
        ("asleep", result.asleep, result.sleeps),
        ("woken, queued", result.queued_after_wakeup, result.sleeps),
    ):
        lines.append(
            f"  {name:<14}{seconds * 1000:>9.1f} ms  {seconds / span:>6.1%} of the time  "
            f"({count:,} times)"
        )
    if result.unmatched:
        lines.append(
            f"  ({result.unmatched:,} times it left its core with no return seen: events lost, "
            "those gaps not counted)"
        )
    lines.append("sleeps by length (times, ms):")
    for _, name in SLEEP_BUCKETS:
        lines.append(
            f"  {name:<32}{result.sleeps_by_length[name]:>7,}"
            f"{result.slept_by_length[name] * 1000:>10.1f}"
        )
    lines.append("preempted by (times, ms it waited for the core back):")
    ranked = sorted(result.preempted_for.items(), key=lambda item: -item[1])
    for kind, seconds in ranked[:top]:
        lines.append(f"  {kind:<32}{result.preempted_by[kind]:>7,}{seconds * 1000:>10.1f}")
    lines.append("woken by (thread/tid, times):")
    for waker, count in result.woken_by.most_common(top):
        lines.append(f"  {waker:<32}{count:>7,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loopwaits",
        description="Where a thread's time off its core went, from `perf sched script` output "
        "(see this module's docstring for how to record it).",
    )
    parser.add_argument("script", type=Path, help="output of perf sched script")
    parser.add_argument(
        "--tid", type=int, required=True, help="the thread (the worker's pid: its event loop)"
    )
    args = parser.parse_args(argv)
    # perf writes some lines with bytes that are not UTF-8 (thread names, mostly).
    with args.script.open(errors="replace") as lines:
        print(render(waits(lines, args.tid)))


if __name__ == "__main__":
    main()
