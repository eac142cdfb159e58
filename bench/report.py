"""The results: one JSON document, a table for people, a PNG plot."""

from __future__ import annotations

import json
import os
import platform
import shutil
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

#: Dotted paths every result document has (the smoke test checks them, and so can any reader).
REQUIRED_FIELDS = (
    "parameters.events",
    "parameters.contacts",
    "parameters.latencySeconds",
    "parameters.warmupSeconds",
    "parameters.levels",
    "parameters.partitions",
    "parameters.seed",
    "parameters.build",
    "machine.cores",
    "machine.python",
    "machine.versions.faust-streaming",
    "machine.versions.aiokafka",
    "load.records",
    "load.orders",
    "phases.contacts.eventsPerSecond",
    "phases.produce.eventsPerSecond",
    "phases.ceiling.eventsPerSecond",
    "phases.worker.eventsPerSecond",
    "phases.worker.peakRssMb",
    "phases.worker.machineBusyCores",
    "phases.worker.machineStealCores",
    "phases.worker.workerLoopCores",
    "phases.worker.workerRocksdbCores",
    "phases.worker.workerOtherCores",
    "phases.worker.benchCpuCores",
    "phases.worker.tableOrders",
    "phases.worker.tableDiskMb",
    "phases.latency",
    "summary.ceilingEventsPerSecond",
    "summary.workerEventsPerSecond",
    "summary.workerToCeilingRatio",
    "summary.workerPeakRssMb",
    "summary.tableOrders",
    "summary.tableDiskMb",
    "summary.latency",
)
LEVEL_FIELDS = (
    "targetEventsPerSecond",
    "measured",
    "p50Ms",
    "p95Ms",
    "p99Ms",
    "maxMs",
    "workerP99Ms",
    "sendLagP99Ms",
    "fromSend",
    "warmup",
    "machineBusyCores",
    "machineStealCores",
    "workerLoopCores",
    "benchCpuCores",
    "brokerGcPauses",
    "brokerGcMaxPauseMs",
)
_PACKAGES = (
    "faust-streaming",
    "aiokafka",
    "confluent-kafka",
    "orjson",
    "rocksdict",
    "redis",
    "uvloop",
)


def machine(redis_version: str | None) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    from confluent_kafka import libversion

    versions["librdkafka"] = libversion()[0]
    versions["redis-server"] = redis_version
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memoryGb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures, lifted out of the phases."""
    phases = result["phases"]
    ceiling = phases["ceiling"]["eventsPerSecond"]
    worker = phases["worker"]["eventsPerSecond"]
    return {
        "produceEventsPerSecond": phases["produce"]["eventsPerSecond"],
        "ceilingEventsPerSecond": ceiling,
        "workerEventsPerSecond": worker,
        "workerToCeilingRatio": round(worker / ceiling, 3) if ceiling else None,
        "workerPeakRssMb": max(
            [phases["worker"]["peakRssMb"], *(level["peakRssMb"] for level in phases["latency"])]
        ),
        "tableOrders": phases["worker"]["tableOrders"],
        "expectedOrders": result["load"]["orders"],
        "tableDiskMb": phases["worker"]["tableDiskMb"],
        "latency": {
            f"{level['fraction']:.0%}": {k: level[k] for k in LEVEL_FIELDS}
            for level in phases["latency"]
        },
    }


def missing_fields(result: dict[str, Any]) -> list[str]:
    missing = []
    for path in REQUIRED_FIELDS:
        node: Any = result
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    return missing


def write(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """latest.json and latest.png, plus a timestamped copy of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromisoformat(result["startedAt"]).strftime("%Y%m%dT%H%M%S")
    paths = {"json": out_dir / "latest.json", "png": out_dir / "latest.png"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    plot(result, paths["png"])
    for kind, path in paths.items():
        shutil.copyfile(path, out_dir / f"{stamp}.{kind}")
    return paths


def table(result: dict[str, Any]) -> str:
    p = result["parameters"]
    phases = result["phases"]
    summary = result["summary"]
    m = result["machine"]
    lines = [
        f"order-processor benchmark, {result['startedAt']}",
        f"  {p['events']:,} events (~{result['load']['averageBytes']:.0f} B, "
        f"{result['load']['bad']:,} bad), {result['load']['orders']:,} orders, "
        f"{p['contacts']:,} contacts, {p['partitions']} partitions",
        f"  {m['cores']} cores, {m['memoryGb']} GB, Python {m['python']}, "
        f"faust-streaming {m['versions']['faust-streaming']}, "
        f"aiokafka {m['versions']['aiokafka']}",
    ]
    lines.append(f"  worker build: {p['build']}")
    if "latencyLingerMs" in p:
        lines.append(
            f"  latency levels' producer: {p['latencyCompression']}, "
            f"linger {p['latencyLingerMs']:g} ms"
        )
    if p.get("workerSettings"):
        settings = " ".join(f"{k}={v}" for k, v in p["workerSettings"].items())
        lines.append(f"  worker settings: {settings} (the rest default)")
    lines += [
        "",
        f"  {'phase':<36}{'events':>12}{'seconds':>10}{'events/s':>12}",
    ]
    for name, key in (
        ("0  contacts into Redis", "contacts"),
        ("0  backlog produced (confluent-kafka)", "produce"),
        ("1  ceiling: aiokafka relay, no state", "ceiling"),
        ("2  worker on the backlog", "worker"),
    ):
        ph = phases[key]
        lines.append(
            f"  {name:<36}{ph['events']:>12,}{ph['seconds']:>10.1f}{ph['eventsPerSecond']:>12,.0f}"
        )
    worker = phases["worker"]
    ratio = summary["workerToCeilingRatio"]
    lines += [
        "",
        f"  worker / ceiling: {ratio:.2f}" if ratio is not None else "  worker / ceiling: n/a",
        f"  worker: ready after {worker['startupSeconds']:.1f}s, {worker['cpuCores']:.2f} cores "
        f"busy, peak RSS {summary['workerPeakRssMb']:.0f} MB{_threads(worker)}",
        f"  machine during phase 2: {worker['machineBusyCores']:.2f} of {m['cores']} cores busy"
        f"{_peers(worker)}, {worker['machineStealCores']:.2f} stolen by the hypervisor"
        f"{_waiting(worker)}",
        *_broker_gc_line(worker),
        f"  table: {_n(worker['tableOrders'])} orders (expected {summary['expectedOrders']:,}), "
        f"{worker['tableDiskMb']:.1f} MB on disk",
    ]
    if phases["latency"]:
        lines += [
            "",
            f"  {'latency':<9}{'target/s':>10}{'sent/s':>10}{'measured':>10}{'missing':>9}"
            f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'worker p50/p99':>16}"
            f"{'cpu':>6}{'loop':>6}{'queued':>8}{'machine':>9}{'broker':>8}{'bench':>6}"
            f"{'steal':>7}{'wait':>6}"
            f"{'warm-up p99':>13}{'gc n/max':>10}",
        ]
        for level in phases["latency"]:
            lines.append(
                f"  {level['fraction']:<9.0%}{level['targetEventsPerSecond']:>10,.0f}"
                f"{level['achievedEventsPerSecond']:>10,.0f}{level['measured']:>10,}"
                f"{level['missing']:>9,}{_ms(level['p50Ms'])}{_ms(level['p95Ms'])}"
                f"{_ms(level['p99Ms'])}{_ms(level['maxMs'])}"
                f"{_ms(level['workerP50Ms'])}/{_ms(level['workerP99Ms']).strip():<6}"
                f"{level['workerCpuCores']:>6.2f}{_decimal(level.get('workerLoopCores'))}"
                f"{_decimal(level.get('workerLoopQueued')):>8}"
                f"{level['machineBusyCores']:>9.2f}{_decimal(level.get('brokerCpuCores')):>8}"
                f"{_decimal(level.get('benchCpuCores'))}"
                f"{level['machineStealCores']:>7.2f}{_decimal(level.get('machineCpuWaiting'))}"
                f"{_ms(level['warmup']['p99Ms']):>13}{_pauses(level):>10}"
            )
        lines += [_send_lag_line(level) for level in phases["latency"] if "fromSend" in level]
        warmup = result["parameters"]["warmupSeconds"]
        lines.append(
            "  (latency: planned send to output seen, over each level's "
            f"{result['parameters']['latencySeconds']:g} s after a {warmup:g} s warm-up;\n"
            "   worker: planned send to the output's CreateTime, stamped when the worker hands it"
            " to Kafka;\n   cpu: the worker's cores busy during the level, loop: its event loop's"
            " (near 1, the worker\n   can go no faster), queued: the share of the time the loop was"
            " ready to run but waited\n   for a core; machine, steal: the"
            " whole machine's cores busy,\n   and those the hypervisor gave to other guests;"
            " broker, bench: the cores of the broker\n   (one started here) and of this"
            " benchmark's load generator and output reader;\n   wait: the share of the time"
            " some thread waited for a core;\n  "
            " warm-up p99: the warm-up's own, not counted; gc n/max: the broker's\n   GC pauses"
            " over the counted seconds, how many and the longest in ms, during which it answers"
            "\n   no one)"
        )
    return "\n".join(lines)


def _peers(phase: dict[str, Any]) -> str:
    """The other processes' share of the busy cores, those the run read."""
    names = (
        ("brokerCpuCores", "the broker"),
        ("redisCpuCores", "Redis"),
        ("benchCpuCores", "this benchmark"),
    )
    parts = [f"{label} {phase[key]:.2f}" for key, label in names if key in phase]
    return f" ({', '.join(parts)})" if parts else ""


def _threads(phase: dict[str, Any]) -> str:
    if "workerLoopCores" not in phase:
        return ""
    switches = (
        f"; the loop blocked {phase['workerLoopBlockedPerSecond']:,} times a second and was "
        f"preempted {phase['workerLoopPreemptedPerSecond']:,}"
        if "workerLoopBlockedPerSecond" in phase
        else ""
    )
    if "workerLoopQueued" in phase:
        switches += f"; it waited for a core {phase['workerLoopQueued']:.0%} of the time"
    return (
        f"\n  worker's threads: event loop {phase['workerLoopCores']:.2f} cores, RocksDB "
        f"{phase['workerRocksdbCores']:.2f}, the others {phase['workerOtherCores']:.2f}{switches}"
    )


def _waiting(phase: dict[str, Any]) -> str:
    waiting = phase.get("machineCpuWaiting")
    return "" if waiting is None else f", a thread waiting for a core {waiting:.0%} of the time"


def _broker_gc_line(phase: dict[str, Any]) -> list[str]:
    if phase.get("brokerGcPauses") is None:
        return []  # a broker not started by the benchmark: its GC log is not ours
    return [
        f"  broker during phase 2: {phase['brokerGcPauses']:,} GC pauses, "
        f"{phase['brokerGcPauseMs']:,.0f} ms in all, "
        f"the longest {phase['brokerGcMaxPauseMs']:,.0f} ms"
    ]


def _send_lag_line(level: dict[str, Any]) -> str:
    """How late the load generator itself was, and the level's latency without it: the
    figures count from each record's planned send, so a sender kept off its core by the others
    on the two cores counts its lateness as the worker's."""
    return (
        f"  {level['fraction']:<9.0%}the sender's own lateness: p99 {level['sendLagP99Ms']} ms, "
        f"worst {level['maxSendLagMs']} ms; from each produce call instead: p50/p99 "
        f"{level['fromSend']['p50Ms']}/{level['fromSend']['p99Ms']} ms"
    )


def _pauses(level: dict[str, Any]) -> str:
    if level.get("brokerGcPauses") is None:
        return "-"
    return f"{level['brokerGcPauses']}/{level['brokerGcMaxPauseMs']:.0f}"


def _decimal(value: float | None) -> str:
    """A share or a number of cores, or a dash where the run did not read it."""
    return f"{'-':>6}" if value is None else f"{value:>6.2f}"


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _ms(value: float | None) -> str:
    return f"{'-':>9}" if value is None else f"{value:>9,.0f}"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    phases = result["phases"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)

    names = ["produce\n(phase 0)", "ceiling\n(phase 1)", "worker\n(phase 2)"]
    rates = [phases[k]["eventsPerSecond"] for k in ("produce", "ceiling", "worker")]
    bars = left.bar(names, rates, color=["#9e9e9e", "#4c72b0", "#dd8452"])
    left.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], padding=3)
    left.set_ylabel("events / s")
    left.set_title("Throughput on the backlog")
    left.margins(y=0.15)

    levels = phases["latency"]
    stats = (("p50", "p50Ms"), ("p95", "p95Ms"), ("p99", "p99Ms"), ("max", "maxMs"))
    width = 0.8 / len(stats)
    for i, (label, key) in enumerate(stats):
        xs = [j + (i - (len(stats) - 1) / 2) * width for j in range(len(levels))]
        values = [level[key] or 0 for level in levels]
        right.bar(xs, values, width, label=label)
    right.set_xticks(
        range(len(levels)),
        [f"{lv['fraction']:.0%} of worker\n{lv['targetEventsPerSecond']:,.0f}/s" for lv in levels],
    )
    right.set_ylabel("ms, planned send to output seen")
    right.set_title("End-to-end latency, open-loop load")
    values = [level[key] for level in levels for _, key in stats if level[key]]
    if values and max(values) / max(min(values), 1e-3) > 50:
        right.set_yscale("log")  # p50 and max differ by orders of magnitude under overload
    right.legend()

    p, m = result["parameters"], result["machine"]
    fig.suptitle(
        f"order-processor: {p['events']:,} events, {p['contacts']:,} contacts, "
        f"{p['partitions']} partitions; {m['cores']} cores, Python {m['python']}, "
        f"faust-streaming {m['versions']['faust-streaming']}",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
