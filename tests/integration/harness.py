"""A real worker process against the real broker and Redis, with topics of its own."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

import topics
from processor.producer import order_key
from tests.servers import free_port

#: role -> the environment variable naming its topic (the contract's, unit-tested there).
ROLES = {role: spec.env for role, spec in topics.load_contract({}).items()}


@dataclass
class Deployment:
    """Names that keep one test's data apart from every other test's on the shared servers."""

    bootstrap: str
    redis_url: str
    data_dir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    web_port: int = field(default_factory=free_port)

    def topic(self, role: str) -> str:
        return f"t{self.tag}.{role.replace('_', '.')}"

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": f"t{self.tag}:",
            "PROCESSOR_APP_ID": f"op-{self.tag}",
            "PROCESSOR_DATA_DIR": str(self.data_dir),
            "PROCESSOR_WEB_PORT": str(self.web_port),
            "PROCESSOR_PARTITIONS": "3",
            # A killed worker's partitions are handed on sooner.
            "PROCESSOR_SESSION_TIMEOUT": "6",
            **{env: self.topic(role) for role, env in ROLES.items()},
        }
        env.update(self.extra_env)
        return env

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "processor.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


class WorkerProcess:
    def __init__(
        self,
        deployment: Deployment,
        log_path: Path,
        *,
        web_port: int | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.deployment = deployment
        self.log_path = log_path
        self.web_port = web_port or deployment.web_port
        self.env = dict(deployment.env, PROCESSOR_WEB_PORT=str(self.web_port))
        if data_dir is not None:
            self.env["PROCESSOR_DATA_DIR"] = str(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        self._log = self.log_path.open("ab")
        start_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "worker", "--loglevel", "info"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            with self.log_path.open("rb") as f:
                f.seek(start_offset)
                if b"Worker ready" in f.read():
                    return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        # SIGTERM first; a worker stuck in an agent crash loop may ignore it, hence SIGKILL.
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self._log.close()  # also when the worker had exited by itself

    def wait_log(self, text: str, timeout: float = 90.0, after: int = 0) -> None:
        """Wait for ``text`` to appear in the log (after byte offset ``after``)."""

        def seen() -> bool:
            with self.log_path.open("rb") as f:
                f.seek(after)
                return text.encode() in f.read()

        eventually(seen, timeout=timeout)

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        headers = {}
        if self.env.get("PROCESSOR_WEB_TOKEN"):
            headers["Authorization"] = f"Bearer {self.env['PROCESSOR_WEB_TOKEN']}"
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def order(self, order_id: str) -> dict[str, Any] | None:
        status, body = self.get(f"/orders/{order_id}")
        return body if status == 200 else None


def producer(bootstrap: str, compression: str = "none") -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "compression.type": compression,
        }
    )


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    partition: int | None = None,
    compression: str = "none",
) -> None:
    p = producer(bootstrap, compression)
    send: Callable[..., None] = (
        p.produce if partition is None else functools.partial(p.produce, partition=partition)
    )
    for key, value in records:
        while True:
            try:
                send(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.1)  # the local queue is full (100,000 records): let some go first
    assert p.flush(30) == 0


def produce_events(
    bootstrap: str, topic: str, events: Iterable[dict[str, Any]], compression: str = "none"
) -> None:
    """Keyed by externalOrderId, as a well-behaved producer does."""
    encoded = [json.dumps(e).encode() for e in events]
    produce(bootstrap, topic, [(order_key(v), v) for v in encoded], compression=compression)


def uncommitted(bootstrap: str, group: str, topic: str, timeout: float = 10.0) -> int:
    """Records of the topic past the consumer group's committed offsets (its lag)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = [TopicPartition(topic, pid) for pid in metadata.topics[topic].partitions]
        lag = 0
        for tp in consumer.committed(partitions, timeout=timeout):
            _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            lag += high - max(tp.offset, 0)  # no commit yet: a negative sentinel
        return lag
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 5.0) -> list[Any]:
    """Every record on the topic so far (all partitions, from the beginning)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        messages = []
        for pid in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, pid), timeout=timeout)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, pid, low)])
            while True:
                msg = consumer.poll(timeout)
                if msg is None:
                    break
                if msg.error():
                    continue
                messages.append(msg)
                if (msg.offset() or 0) >= high - 1:
                    break
        return messages
    finally:
        consumer.close()


def eventually(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.5) -> Any:
    """Poll until ``check`` returns something truthy; the last value otherwise fails the test."""
    deadline = time.monotonic() + timeout
    result = check()
    while not result and time.monotonic() < deadline:
        time.sleep(every)
        result = check()
    if not result:
        raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
    return result


def event(kind: str, order_id: str, **params: Any) -> dict[str, Any]:
    """A Generate event; params are given by name, externalOrderId first."""
    return {
        "eventTypeKey": kind,
        "params": [{"name": "externalOrderId", "value": order_id}]
        + [{"name": name, "value": value} for name, value in params.items()],
    }
