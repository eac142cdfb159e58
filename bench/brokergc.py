"""The local broker's garbage-collection pauses, read from its JVM's GC log.

While a pause lasts the broker answers no produce and no fetch, so every record in flight, the
load's and the worker's outputs alike, waits it out, and the worker then gets the pause's events
at once. The benchmark starts its own broker with this log (``KAFKA_OPTS``, see
``deploy/local/kafka.sh``) and puts the pauses beside each level's latency, per second too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# "[2026-12-01T14:59:25.988+0000] GC(28) Pause Young (Normal) (G1 Evacuation Pause)
#  432M->168M(512M) 12.546ms" with the `time` decorator; Remark, Cleanup and ZGC's pauses
# ("Pause Mark Start 0.012ms") have no heap figures.
_PAUSE = re.compile(
    r"^\[(?P<time>[^\]]+)\].*?\bPause (?P<kind>.+?)"
    r"(?: \d+[KMG]->\d+[KMG]\(\d+[KMG]\))? (?P<ms>\d+(?:\.\d+)?)ms$"
)


@dataclass(frozen=True)
class Pause:
    #: Wall-clock time (epoch seconds) the JVM logged it: the pause's end.
    ended: float
    ms: float
    kind: str


def log_option(path: Path) -> str:
    """The JVM option that writes the log :func:`read` reads: G1 logs its pauses under ``gc``,
    ZGC under ``gc+phases``; ``gc+cpu`` adds each collection's CPU against its wall time (a
    pause far longer than its CPU waited for cores)."""
    if any(c in str(path) for c in ":, "):
        raise ValueError(f"the JVM's -Xlog cannot take a file name with ':', ',' or ' ': {path}")
    return f"-Xlog:gc,gc+phases,gc+cpu:file={path}:time"


def parse(lines: Iterable[str]) -> list[Pause]:
    pauses = []
    for line in lines:
        match = _PAUSE.match(line.rstrip())
        if match:
            ended = datetime.strptime(match["time"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
            pauses.append(Pause(ended, float(match["ms"]), match["kind"]))
    return pauses


def read(path: Path) -> list[Pause]:
    """The pauses logged so far; none when there is no log (a broker not started here)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            return parse(log)
    except FileNotFoundError:
        return []


def within(pauses: Sequence[Pause], start: float, end: float) -> list[Pause]:
    return [p for p in pauses if start <= p.ended < end]


def summary(pauses: Sequence[Pause] | None) -> dict[str, Any]:
    """Count, total and longest; all None when the pauses are unknown (``None``)."""
    if pauses is None:
        return {"brokerGcPauses": None, "brokerGcPauseMs": None, "brokerGcMaxPauseMs": None}
    return {
        "brokerGcPauses": len(pauses),
        "brokerGcPauseMs": round(sum(p.ms for p in pauses), 1),
        "brokerGcMaxPauseMs": round(max((p.ms for p in pauses), default=0.0), 1),
    }


def per_second(pauses: Sequence[Pause], t0: float) -> dict[int, float]:
    """Milliseconds of pause that ended in each second counted from ``t0`` (wall clock)."""
    seconds: dict[int, float] = {}
    for pause in pauses:
        if pause.ended >= t0:
            second = int(pause.ended - t0)
            seconds[second] = round(seconds.get(second, 0.0) + pause.ms, 1)
    return seconds
