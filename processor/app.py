"""Builds the Faust app: topics from the contract, the orders table, agents and web views.

Nothing connects at import time; :func:`create_app` wires a :class:`Processor` from settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from processor import codec, streams, table, transport
from processor.directory import ContactCache, ContactDirectory
from processor.metrics import Metrics
from processor.outbox import KafkaPublisher, Publisher
from processor.settings import Settings, Store


@dataclass(frozen=True, slots=True)
class Topics:
    events: Any
    rekeyed: Any
    contacts: Any
    rfm: Any
    dlq: Any


@dataclass
class Processor:
    """The wired service; agents and views receive it instead of reaching for globals."""

    app: Any
    settings: Settings
    topics: Topics
    orders: Any
    directory: ContactDirectory
    publisher: Publisher
    metrics: Metrics = field(default_factory=Metrics)


ORDERS_TABLE = "orders"
MAX_REQUEST_BYTES = 4 * 1024 * 1024
STREAM_BUFFER = 4096  # Faust's default
#: Records per poll. Faust stops fetching a partition once its stream buffer is 4/5 full, but
#: puts a whole poll into it: unbounded, a poll (1 MiB a partition) overflowed the buffer and
#: every message after that waited for room through a task of its own (bench/PROFILE.md).
MAX_POLL_RECORDS = 500


class App(faust.App):
    """Faust's app on :mod:`processor.transport` (its consumer's fetches bounded and batched,
    each message handed to the streams without a task of its own) and :mod:`processor.streams`
    (agents take batches straight from their queues)."""

    _event_type: Any = None  # conf.Event, read on the first message
    #: (max wait ms, min bytes) of the consumer's fetches, from Settings: Faust has no setting.
    fetch: tuple[int, int]
    #: Whether the consumer runs in a thread of its own (Faust's way), from Settings.
    consumer_thread: bool

    def _new_transport(self) -> Any:
        return transport.Transport(self.conf.broker_consumer, self)

    def create_event(self, key: Any, value: Any, headers: Any, message: Any) -> Any:
        # Faust reads self.conf.Event here for every message, through its settings registry's
        # __getattribute__ (~1% of the worker); the class is fixed once the app is configured.
        event_type = self._event_type
        if event_type is None:
            event_type = self._event_type = self.conf.Event
        return event_type(self, key, value, headers, message)


def create_app(settings: Settings, *, directory: ContactDirectory | None = None) -> Processor:
    codec.register_faust_codec()
    app = App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_hosts],
        store="rocksdb://" if settings.store is Store.ROCKSDB else "memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # The topic contract creates the source topics (see processor.admin); Faust only
        # declares its own internal ones (the table changelog, the leader topic).
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        broker_max_poll_records=MAX_POLL_RECORDS,
        stream_buffer_maxsize=STREAM_BUFFER,
        Stream=streams.Stream,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=256 * 1024,
        # A dead letter carries its event in base64 (4/3 of it) plus the reason: it must fit in
        # a request even when the event was as large as the broker takes (1 MB by default).
        producer_max_request_size=MAX_REQUEST_BYTES,
        web_host=settings.web_host,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        # Raw table pages would expose every order to anyone who can reach the port.
        web_tables_enabled=False,
        autodiscover=False,
    )
    app.fetch = (settings.fetch_max_wait_ms, settings.fetch_min_bytes)
    app.consumer_thread = settings.consumer_thread
    specs = settings.topics()

    def topic(role: str, serializer: str) -> Any:
        spec = specs[role]
        # The topics agents read carry bytes for our own parsing: decoded at no cost.
        schema = streams.RawSchema() if serializer == "raw" else None
        return app.topic(
            spec.name,
            partitions=spec.partitions,
            key_serializer="raw",
            value_serializer=serializer,
            schema=schema,
            config=dict(spec.config),
        )

    topics = Topics(
        events=topic("orders_events", "raw"),
        rekeyed=topic("orders_events_rekeyed", "raw"),
        contacts=topic("contacts", "raw"),
        rfm=topic("orders_rfm", codec.CODEC_NAME),
        dlq=topic("orders_dlq", codec.CODEC_NAME),
    )
    rocksdb = settings.store is Store.ROCKSDB
    orders: Any = app.Table(
        ORDERS_TABLE,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        store=table.store_url(ORDERS_TABLE) if rocksdb else None,
        options=(
            table.store_options(settings.rocksdb_memory_mb, settings.rocksdb_write_mb_per_s)
            if rocksdb
            else None
        ),
    )
    # Tables take their codec from value_type's model; ours are plain dicts, so name the codec
    # directly. The store and changelog topic are made lazily, after this line.
    orders.value_serializer = codec.CODEC_NAME
    processor = Processor(
        app=app,
        settings=settings,
        topics=topics,
        orders=orders,
        directory=directory
        or ContactDirectory.from_url(
            settings.redis_url,
            settings.redis_prefix,
            ContactCache(size=settings.contact_cache_size, ttl=settings.contact_cache_ttl),
        ),
        # The producer is Faust's, started with the app: looked up at publish time.
        publisher=KafkaPublisher(lambda: app.producer._ensure_producer()),  # type: ignore[attr-defined]
    )

    # Imported here: both modules decorate this app instance.
    from processor import agents, web

    agents.register(processor)
    web.register(processor)
    return processor
