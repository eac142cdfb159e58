"""The benchmark (``python -m bench``) runs end to end on small numbers and writes a full result.

Only that it completes: the figures of a run this small say nothing about performance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT

pytestmark = pytest.mark.integration

# Written out here rather than taken from bench.report.REQUIRED_FIELDS, so that dropping a field
# there cannot make this test pass.
FIELDS = (
    "parameters.events",
    "parameters.contacts",
    "parameters.latencySeconds",
    "parameters.warmupSeconds",
    "parameters.partitions",
    "parameters.build",
    "machine.cores",
    "machine.python",
    "machine.versions.faust-streaming",
    "machine.versions.aiokafka",
    "load.orders",
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
    "summary.ceilingEventsPerSecond",
    "summary.workerEventsPerSecond",
    "summary.workerToCeilingRatio",
    "summary.workerPeakRssMb",
    "summary.tableOrders",
    "summary.tableDiskMb",
)
LEVEL_FIELDS = (
    "fraction",
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


def lookup(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"result lacks {path}"
        node = node[part]
    return node


def test_benchmark_completes_and_reports_every_field(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url}
    command = [
        sys.executable,
        "-m",
        "bench",
        "--events",
        "20000",
        "--contacts",
        "2000",
        "--latency-seconds",
        "3",
        "--warmup-seconds",
        "1",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
    ]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # Up to a minute of it compiling the core, when `make test` has not done so already.
        output, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the benchmark then stops its worker and removes its topics.
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"benchmark still running after 180s:\n{output[-5000:]}")
    assert proc.returncode == 0, output[-5000:]

    result = json.loads((out / "latest.json").read_text())
    for path in FIELDS:
        lookup(result, path)
    levels = lookup(result, "phases.latency")
    assert [level["fraction"] for level in levels] == [0.5, 0.8]
    for level in levels:
        for name in LEVEL_FIELDS:
            assert name in level, f"latency level lacks {name}"
        assert level["warmup"]["measured"] > 0, level["warmup"]
    assert (out / "latest.png").stat().st_size > 0
    # By default the worker runs the compiled build, as the image does, and says so.
    assert lookup(result, "parameters.build") == "compiled"
    worker_log = Path(lookup(result, "run.workerLog")).read_text()
    assert "core compiled" in worker_log, worker_log[-3000:]
