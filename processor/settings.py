"""Every setting of the processor, read from the environment in one place.

Each field names its environment variable and default; ``processor settings`` prints them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path

import topics
from processor.errors import ConfigError

#: Bounds of the fetch settings: a wait well inside the consumer's request timeout (Faust's 90 s),
#: and no more bytes than one partition's fetch may carry (Faust's consumer_max_fetch_size).
MAX_FETCH_WAIT_MS = 10_000
MAX_FETCH_MIN_BYTES = 1_048_576
#: Longest producer linger: far past any batching benefit, and well inside the request timeout
#: that expires a lingering batch.
MAX_PRODUCER_LINGER_MS = 1_000
#: A write cap past any disk's speed (100 GiB/s): above it the cap could only be a typo.
MAX_ROCKSDB_WRITE_MB_PER_S = 100_000


class MismatchPolicy(StrEnum):
    """What to do when totalCost differs from the sum of the items."""

    FLAG = "flag"  # keep the order, mark it, count it
    REJECT = "reject"  # dead-letter the event as total_mismatch
    IGNORE = "ignore"  # do not check


class Store(StrEnum):
    ROCKSDB = "rocksdb"
    MEMORY = "memory"


def _setting(env: str, default: object, help: str) -> object:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap_servers: str = _setting(  # type: ignore[assignment]
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated."
    )
    redis_url: str = _setting(  # type: ignore[assignment]
        "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding the contact directory."
    )
    redis_prefix: str = _setting(  # type: ignore[assignment]
        "REDIS_KEY_PREFIX", "op:", "Prefix of every Redis key, so deployments can share a Redis."
    )
    app_id: str = _setting(  # type: ignore[assignment]
        "PROCESSOR_APP_ID",
        "order-processor",
        "Consumer group and prefix of the table's changelog topic.",
    )
    partitions: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_PARTITIONS",
        topics.default_partitions(),
        "Partitions of every topic; source topics, table changelog and re-key topic must agree.",
    )
    replication_factor: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_REPLICATION_FACTOR", 1, "Replication factor of the topics the processor creates."
    )
    store: Store = _setting(  # type: ignore[assignment]
        "PROCESSOR_STORE", Store.ROCKSDB, "Table store: rocksdb (default) or memory."
    )
    rocksdb_memory_mb: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_ROCKSDB_MEMORY_MB",
        32,
        "RocksDB memory per table partition (three quarters write buffers, a quarter block cache).",
    )
    rocksdb_write_mb_per_s: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_ROCKSDB_WRITE_MB_PER_S",
        64,
        "Cap on each table partition's RocksDB flush and compaction writes, in MiB/s, so that "
        "compactions trickle instead of taking a core in bursts; 0 lifts it.",
    )
    data_dir: Path = _setting(  # type: ignore[assignment]
        "PROCESSOR_DATA_DIR",
        Path(".run/worker-data"),
        "Where the worker keeps its RocksDB table files.",
    )
    web_bind: str = _setting(  # type: ignore[assignment]
        "PROCESSOR_WEB_BIND",
        "127.0.0.1",
        "Address the web server listens on; loopback unless you mean to expose it.",
    )
    web_host: str = _setting(  # type: ignore[assignment]
        "PROCESSOR_WEB_HOST",
        "127.0.0.1",
        "Host name other workers use to reach this one (order lookups are routed by partition).",
    )
    web_port: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_WEB_PORT", 6066, "Port of the worker's web server (dashboard, /orders/{id})."
    )
    web_token: str = _setting(  # type: ignore[assignment]
        "PROCESSOR_WEB_TOKEN",
        "",
        "When set, the web views need 'Authorization: Bearer <token>' (or ?token= for a browser).",
    )
    total_mismatch: MismatchPolicy = _setting(  # type: ignore[assignment]
        "PROCESSOR_TOTAL_MISMATCH",
        MismatchPolicy.FLAG,
        "flag (keep and mark), reject (dead-letter as total_mismatch) or ignore.",
    )
    contact_id_params: tuple[str, ...] = _setting(  # type: ignore[assignment]
        "PROCESSOR_CONTACT_ID_PARAMS",
        (),
        "Custom identification params tried first, comma-separated (e.g. token).",
    )
    history_limit: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_HISTORY_LIMIT", 50, "Transitions kept in each order's history."
    )
    max_event_bytes: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_MAX_EVENT_BYTES", 1_048_576, "Larger records are dead-lettered as too_large."
    )
    max_depth: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_MAX_DEPTH", 32, "Deeper JSON is dead-lettered as too_deep."
    )
    batch_size: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_BATCH_SIZE",
        500,
        "Most events an agent takes at once (one Redis round trip per batch).",
    )
    batch_wait_ms: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_BATCH_WAIT_MS",
        # Counted from the batch's first event, and a bound only: a batch is given as soon as
        # a turn of the event loop brings no more events (processor.streams), since the
        # consumer's fetches already gather up to 5 ms of events (processor.transport).
        5,
        "Longest, in ms, that a batch goes on taking events the consumer is still handing "
        "over, counted from its first; a batch never waits for the next fetch.",
    )
    fetch_max_wait_ms: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_FETCH_MAX_WAIT_MS",
        # 20 until the worker's CPU per event had fallen to ~90 us (then 10: 5-10% more CPU at
        # half load, the median latency 10 ms less), 10 until the consumer ran on the event loop
        # (then 5: ~11% more of the loop's CPU at the same load and drains up to 7% slower, the
        # p50 6-10 ms less and the p99 lower at both load levels; bench/PROFILE.md, session 16).
        5,
        "Longest, in ms, the broker holds a fetch that has less than PROCESSOR_FETCH_MIN_BYTES "
        "(Kafka's fetch.max.wait.ms).",
    )
    fetch_min_bytes: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_FETCH_MIN_BYTES",
        # Smaller fetches lower the latency only while the worker has CPU to spare: each
        # carries fewer events, and batches and fetches cost per piece (bench/PROFILE.md).
        65_536,
        "Bytes the broker gathers before it answers a fetch (Kafka's fetch.min.bytes): lower "
        "trades CPU for latency.",
    )
    producer_linger_ms: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_PRODUCER_LINGER_MS",
        # The outbox hands the producer whole record batches (processor.outbox): nothing is
        # left to gather, and lingering only holds a batch's outputs back.
        0,
        "Longest, in ms, the worker's producer holds a batch of outputs and changelog records "
        "for more (Kafka's linger.ms).",
    )
    consumer_thread: bool = _setting(  # type: ignore[assignment]
        "PROCESSOR_CONSUMER_THREAD",
        # Off: on the loop, fetching costs the worker less than a thread's hand-overs and the
        # GIL passed between the two threads (bench/PROFILE.md, session 16).
        False,
        "Run the Kafka consumer in a thread of its own, as Faust does, instead of on the "
        "worker's event loop: heartbeats then go on while the loop is blocked, at a cost in "
        "CPU and latency.",
    )
    contact_cache_size: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_CONTACT_CACHE_SIZE",
        100_000,
        "Identifier matches kept in memory per worker; 0 turns the cache off.",
    )
    contact_cache_ttl: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_CONTACT_CACHE_TTL",
        30,
        "Seconds a cached match lives: how stale a contact changed elsewhere can be.",
    )
    session_timeout: int = _setting(  # type: ignore[assignment]
        "PROCESSOR_SESSION_TIMEOUT",
        30,
        "Seconds before a silent worker's partitions move to the others (Kafka group session).",
    )
    create_topics: bool = _setting(  # type: ignore[assignment]
        "PROCESSOR_CREATE_TOPICS", True, "Create missing topics from the contract at worker start."
    )
    topic_env: Mapping[str, str] = field(default_factory=dict, metadata={"env": ""})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f.metadata.get("env")
            if not name or name not in env or env[name] == "":
                continue
            values[f.name] = _convert(f.name, name, env[name], f.default)
        values["topic_env"] = {k: v for k, v in env.items() if k.startswith("TOPIC_")}
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.partitions < 1:
            raise ConfigError("PROCESSOR_PARTITIONS must be at least 1")
        if self.batch_size < 1 or self.batch_wait_ms < 0:
            raise ConfigError("PROCESSOR_BATCH_SIZE must be >= 1 and PROCESSOR_BATCH_WAIT_MS >= 0")
        # Past the consumer's request timeout, every quiet fetch would time out instead.
        _require_range("PROCESSOR_FETCH_MAX_WAIT_MS", self.fetch_max_wait_ms, 0, MAX_FETCH_WAIT_MS)
        _require_range("PROCESSOR_FETCH_MIN_BYTES", self.fetch_min_bytes, 1, MAX_FETCH_MIN_BYTES)
        _require_range(
            "PROCESSOR_PRODUCER_LINGER_MS", self.producer_linger_ms, 0, MAX_PRODUCER_LINGER_MS
        )
        _require_range(
            "PROCESSOR_ROCKSDB_WRITE_MB_PER_S",
            self.rocksdb_write_mb_per_s,
            0,
            MAX_ROCKSDB_WRITE_MB_PER_S,
        )
        if self.history_limit < 1:
            raise ConfigError("PROCESSOR_HISTORY_LIMIT must be at least 1")
        if self.session_timeout < 6:
            raise ConfigError("PROCESSOR_SESSION_TIMEOUT must be at least 6 (Kafka's minimum)")
        if not 3 <= self.max_depth <= 200:
            # orjson refuses to write deeper than 254 levels; what we keep must stay writable.
            raise ConfigError("PROCESSOR_MAX_DEPTH must be from 3 (event, params, value) to 200")

    def topics(self) -> dict[str, topics.TopicSpec]:
        return topics.load_contract(
            self.topic_env, partitions=self.partitions, replication_factor=self.replication_factor
        )

    @property
    def kafka_hosts(self) -> list[str]:
        return [h.strip() for h in self.kafka_bootstrap_servers.split(",") if h.strip()]


def _require_range(env_name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{env_name} must be from {low} to {high}")


def _convert(attr: str, env_name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, StrEnum):
            return type(default)(raw.lower())
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, tuple):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except ValueError:
        raise ConfigError(f"{env_name}={raw!r} is not a valid value for {attr}") from None
    return raw


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, for ``--help`` and the README."""
    rows = []
    for f in fields(Settings):
        env = f.metadata.get("env")
        if env:
            default = f.default
            shown = ",".join(default) if isinstance(default, tuple) else str(default)
            rows.append((env, shown, f.metadata["help"]))
    rows.extend(
        (spec.env, spec.name, f"Name of the {role} topic.")
        for role, spec in topics.load_contract({}).items()
    )
    return rows
