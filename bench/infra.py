"""The servers and names a benchmark run uses, and the Kafka bookkeeping the phases share.

Each run gets a tag; every topic, consumer group and Redis key it creates carries it, so a run
on shared servers touches nothing else and can remove exactly what it made.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import topics
from bench import brokergc
from bench.machine import peer_counters
from tests.servers import free_port, local_kafka, local_redis


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Servers:
    bootstrap: str
    redis_url: str
    #: "env" when given by KAFKA_BOOTSTRAP_SERVERS / REDIS_URL, "local" when started here.
    kafka_source: str
    redis_source: str
    #: The broker's GC log (bench.brokergc) when the broker was started here, else None.
    broker_gc_log: Path | None = None
    #: Pids of the servers started here ("broker", "redis"), whose CPU is read beside the
    #: worker's; a server from the environment may be on another machine.
    pids: Mapping[str, int] = field(default_factory=dict)


@contextmanager
def servers(work_dir: Path) -> Iterator[Servers]:
    """Kafka and Redis from the environment, else local ones that are stopped on the way out."""
    with ExitStack() as stack:
        #: The pid of each server started here, from the pid file its script keeps in its home.
        pids: dict[str, int] = {}

        def pick(
            env_var: str, name: str, role: str, local: Callable[[Path], Any]
        ) -> tuple[str, str]:
            if address := os.environ.get(env_var, ""):
                return address, "env"
            log(f"{env_var} not set: starting a local {name} (deploy/local/{name.lower()}.sh)")
            home = work_dir / name.lower()
            address = stack.enter_context(local(home))
            if (pid := _read_pid(home / f"{name.lower()}.pid")) is not None:
                pids[role] = pid
            return address, "local"

        gc_log, gc_option = _broker_gc_log(work_dir)
        bootstrap, kafka_source = pick(
            "KAFKA_BOOTSTRAP_SERVERS", "Kafka", "broker", lambda home: local_kafka(home, gc_option)
        )
        redis_url, redis_source = pick("REDIS_URL", "Redis", "redis", local_redis)
        yield Servers(
            bootstrap,
            redis_url,
            kafka_source,
            redis_source,
            broker_gc_log=gc_log if kafka_source == "local" else None,
            pids=pids,
        )


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _broker_gc_log(work_dir: Path) -> tuple[Path | None, str]:
    """Where a broker started here logs its GC pauses (the run's own directory, so no earlier
    run's pauses are in it), and the JVM option that says so."""
    path = work_dir / "kafka-gc.log"
    try:
        return path, brokergc.log_option(path)
    except ValueError as exc:
        log(f"no broker GC log: {exc}")
        return None, ""


ROOT = Path(__file__).resolve().parents[1]


def compiled_build() -> Path:
    """The package with its pure core compiled, as the container image runs it
    (``deploy/local/compile.sh``: about a minute, or nothing when the sources have not changed)."""
    log("worker build: the compiled core (deploy/local/compile.sh)")
    result = subprocess.run(
        [str(ROOT / "deploy" / "local" / "compile.sh")],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip().splitlines()[-1])


def new_tag() -> str:
    """Sortable by start time, unique enough for runs that start in the same second."""
    return f"{time.strftime('%m%d%H%M%S')}{uuid.uuid4().hex[:4]}"


#: The worker settings every run sets to its own names, files and port (``--worker-setting``
#: cannot change them): see :meth:`Deployment.worker_env`.
RUN_SETTINGS = (
    "PROCESSOR_APP_ID",
    "PROCESSOR_DATA_DIR",
    "PROCESSOR_WEB_PORT",
    "PROCESSOR_PARTITIONS",
)


@dataclass
class Deployment:
    """The names of one run: topics, consumer groups, Redis prefix, worker files."""

    servers: Servers
    work_dir: Path
    partitions: int
    tag: str = field(default_factory=lambda: new_tag())
    web_port: int = field(default_factory=free_port)
    #: PROCESSOR_* settings given on the command line; every other one is the default.
    settings: dict[str, str] = field(default_factory=dict)
    #: Where the worker's package comes from: a compiled build (:func:`compiled_build`), or None
    #: for the source as it is.
    build: Path | None = None

    @property
    def prefix(self) -> str:
        return f"bench{self.tag}"

    def peers(self) -> Callable[[], dict[str, float]]:
        """The CPU seconds of the broker and Redis (when started here) and of this benchmark
        process, its load generator and output reader (bench.machine.Reading)."""
        return peer_counters({**self.servers.pids, "bench": os.getpid()})

    def topic(self, role: str) -> str:
        return f"{self.prefix}.{role.replace('_', '.')}"

    @property
    def events_topic(self) -> str:
        return self.topic("orders_events")

    @property
    def app_id(self) -> str:
        """The worker's consumer group; Faust also prefixes its own topics with it."""
        return f"{self.prefix}-worker"

    @property
    def ceiling_group(self) -> str:
        return f"{self.prefix}-ceiling"

    @property
    def redis_prefix(self) -> str:
        return f"{self.prefix}:"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "worker-data"

    @property
    def worker_log(self) -> Path:
        return self.work_dir / "worker.log"

    def worker_env(self) -> dict[str, str]:
        """The worker's environment: default settings except names, files, port and those
        given with ``--worker-setting``."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            # A developer's own PROCESSOR_* or TOPIC_* settings would skew or misdirect the run.
            if not k.startswith(("PROCESSOR_", "TOPIC_", "REDIS_KEY_PREFIX"))
        }
        return {
            **inherited,
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.bootstrap,
            "REDIS_URL": self.servers.redis_url,
            "REDIS_KEY_PREFIX": self.redis_prefix,
            **dict(zip(RUN_SETTINGS, self._run_values(), strict=True)),
            **{spec.env: self.topic(role) for role, spec in topics.load_contract({}).items()},
            **self.settings,
            # The worker runs from its work directory (bench.worker), so this comes first.
            **({"PYTHONPATH": str(self.build)} if self.build else {}),
        }

    def _run_values(self) -> tuple[str, ...]:
        return (self.app_id, str(self.data_dir), str(self.web_port), str(self.partitions))

    def create_topics(self) -> None:
        """The contract's topics under this run's names, by the processor's own command."""
        result = subprocess.run(
            [sys.executable, "-m", "processor.cli", "topics", "create"],
            env=self.worker_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"processor topics create failed:\n{result.stderr}")

    def cleanup(self) -> None:
        """Delete every topic, consumer group and Redis key this run made."""
        admin = AdminClient({"bootstrap.servers": self.servers.bootstrap})
        try:
            names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix)]
            if names:
                for future in admin.delete_topics(names, operation_timeout=30).values():
                    future.result()
            groups = [self.app_id, self.ceiling_group]
            for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
                with suppress(KafkaException):  # a group that never committed does not exist
                    future.result()
        except KafkaException as exc:
            log(f"cleanup: could not delete topics/groups: {exc}")
        client = redis.Redis.from_url(self.servers.redis_url)
        try:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.redis_prefix}*", count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        finally:
            client.close()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        future.result()


class Offsets:
    """High watermarks and a group's committed offsets, via one confluent-kafka consumer that
    never joins the group (committed() is a plain OffsetFetch)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )

    def close(self) -> None:
        self._consumer.close()

    def partitions(self, topic: str) -> list[int]:
        metadata = self._consumer.list_topics(topic, timeout=10)
        return sorted(metadata.topics[topic].partitions)

    def high(self, topic: str) -> dict[int, int]:
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in self.partitions(topic)
        }

    def committed(self, topic: str) -> dict[int, int]:
        """Committed offset per partition (the next offset to read); 0 when none yet."""
        tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
        return {tp.partition: max(tp.offset, 0) for tp in self._consumer.committed(tps, 10)}


def remaining(high: Mapping[int, int], committed: Mapping[int, int]) -> int:
    """Records not yet committed."""
    return sum(max(h - committed.get(p, 0), 0) for p, h in high.items())
