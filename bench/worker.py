"""The real worker as a subprocess (``python -m processor.cli worker``), watched from outside:
readiness from its log, memory from psutil, counters from its web port, table from its files."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import psutil
from rocksdict import AccessType, Options, Rdict

from bench.infra import Deployment, log
from bench.machine import thread_counters

READY = b"Worker ready"
PR_SET_PDEATHSIG = 1
# Faust keeps its last committed offset in each partition's RocksDB under this key.
FAUST_OFFSET_KEY = b"__faust\x00offset__"


class MemorySampler:
    """Samples the RSS of a process and its children every ``interval`` seconds, in a thread.

    ``peak`` is the highest sample since the last ``reset_peak()``; ``overall_peak`` since start.
    """

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self.overall_peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def sample(self) -> int:
        try:
            procs = [self._process, *self._process.children(recursive=True)]
            rss = 0
            for proc in procs:
                with suppress(psutil.NoSuchProcess):  # a child that just ended
                    rss += proc.memory_info().rss
            return rss
        except psutil.NoSuchProcess:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self.sample()
            self.peak = max(self.peak, rss)
            self.overall_peak = max(self.overall_peak, rss)

    def reset_peak(self) -> None:
        self.peak = self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the benchmark dies, even by SIGKILL, so no
    worker is left running (Linux's PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Worker:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.proc: subprocess.Popen[bytes] | None = None
        self.memory: MemorySampler | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0

    def start(self, timeout: float = 180.0) -> float:
        """Start the worker and return the monotonic time its log said "Worker ready"."""
        path = self.deployment.worker_log
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = path.open("ab")
        offset = path.stat().st_size
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "worker", "--loglevel", "info"],
            env=self.deployment.worker_env(),
            # Not the repository: `-m` puts the working directory first on sys.path, where the
            # source would shadow the deployment's build.
            cwd=self.deployment.work_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.memory = MemorySampler(self.proc.pid)
        deadline = self.started_at + timeout
        with path.open("rb") as reader:
            reader.seek(offset)
            seen = b""
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
                # Only the new bytes each time: the log grows fast once events flow.
                seen = seen[-len(READY) :] + reader.read()
                if READY in seen:
                    return time.monotonic()
                time.sleep(0.05)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def thread_counters(self) -> dict[str, float]:
        """The worker's thread counters so far (bench.machine.thread_counters)."""
        return thread_counters(self.proc.pid) if self.proc is not None else {}

    def cpu_seconds(self) -> float:
        """User+system CPU time of the worker and its children so far."""
        if self.proc is None:
            return 0.0
        try:
            proc = psutil.Process(self.proc.pid)
            total = 0.0
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
            return total
        except psutil.NoSuchProcess:
            return 0.0

    def stats(self) -> dict[str, Any]:
        """The worker's counters (GET /api/stats)."""
        url = f"http://127.0.0.1:{self.deployment.web_port}/api/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
            return stats

    def tail(self, lines: int = 40) -> str:
        text = self.deployment.worker_log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 30.0) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log("worker ignored SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


def table_files(data_dir: Path) -> list[Path]:
    """The orders table's RocksDB directories, one per partition (Faust names them
    ``orders-<partition>.db`` under its table dir)."""
    return sorted(p for p in data_dir.rglob("orders-*.db") if p.is_dir())


def count_orders(data_dir: Path) -> int:
    """Keys in the orders table, read-only from the files (RocksDB allows that beside the
    running writer; it reads the files and log as they are at open time)."""
    total = 0
    for path in table_files(data_dir):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            # keys(), not iter(db): a raw-mode Rdict does not iterate its keys.
            total += sum(1 for key in db.keys() if key != FAUST_OFFSET_KEY)  # noqa: SIM118
        finally:
            db.close()
    return total


def disk_bytes(path: Path) -> int:
    """Space the files take on disk, as du counts it (allocated blocks, not apparent size)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with suppress(FileNotFoundError):  # RocksDB compacted it away while we walked
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total
