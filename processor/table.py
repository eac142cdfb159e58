"""The orders table, read and written a batch at a time.

Faust's table API reads and writes one key at a time, and each write sends its own changelog
record through Faust's producer buffer; at thousands of events a second that cost more than
applying the events (bench/PROFILE.md). This module works on the same table underneath instead:
one multi-get and one RocksDB write batch per partition, and the changelog records go into the
batch's :class:`~processor.outbox.Outbox`. Once they are delivered it does what Faust does after
a changelog send: it keeps the offset in the partition's RocksDB (in a column family of its own,
:meth:`OrdersStoreOptions.open`), so that recovery after a restart reads the changelog from there
on.

What Faust recovers, serves (``table.get``, ``/orders/{id}``) and rebalances is the same table:
key = the raw order id, value = the table's codec (orjson), one RocksDB per partition
(:class:`OrdersStore`: Faust's ``faust.stores.rocksdb`` on rocksdict, with options of its own)
or one dict (``faust.stores.memory``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faust import stores
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP
from rocksdict import (
    AccessType,
    DBCompressionType,
    Env,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
)

from processor import codec
from processor.outbox import Outbox

#: The orders table's store (:class:`OrdersStore`), as Faust finds stores: by URL scheme.
STORE_SCHEME = "orders-rocksdb"
#: L0 files that start a compaction: RocksDB's default. 8 (sessions 5-11) saved ~6% of RocksDB's
#: CPU per write, but made every L0 compaction, and the latency burst it causes, twice as large.
L0_COMPACTION_TRIGGER = 4
#: The column family of each partition's RocksDB that holds Faust's persisted changelog offset.
OFFSETS = "offsets"
OFFSETS_WRITE_BUFFER = 1024 * 1024

#: What the store holds for a key: the encoded value (RocksDB), the decoded one (memory), or None.
Stored = bytes | dict[str, Any] | None


class OrdersTable:
    """A Faust table (``app.Table``), read and written per partition and batch."""

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def _store(self) -> Any:
        store = self.table.data
        # OrdersStore is on rocksdict, whose multi-get and write batches this relies on.
        if isinstance(store, MemoryStore | OrdersStore):
            return store
        raise TypeError(f"the orders table cannot be batched on {type(store).__name__}")

    def get_many(self, partition: int, keys: Sequence[bytes]) -> list[Stored]:
        store = self._store
        if isinstance(store, MemoryStore):
            return [store.data.get(key) for key in keys]
        values: list[Stored] = store._db_for_partition(partition).get(list(keys))
        return values

    @staticmethod
    def decode(stored: Stored) -> dict[str, Any] | None:
        """Decoded apart from :meth:`get_many`, so one bad value fails one event, not a batch."""
        if isinstance(stored, bytes):
            value: dict[str, Any] = codec.loads(stored)
            return value
        return stored

    def put_many(
        self, partition: int, values: Mapping[bytes, dict[str, Any]], outbox: Outbox
    ) -> None:
        """Write the values to the partition's store now and their changelog records to ``outbox``.

        Local store first, as Faust does: a crash before the changelog is delivered leaves the
        store ahead, and the events behind it, not committed, are replayed and written again.
        """
        store = self._store
        changelog = self.table.changelog_topic.get_topic_name()
        encoded = {key: codec.dumps(value) for key, value in values.items()}
        if isinstance(store, MemoryStore):
            store.data.update(values)
            store._key_partition.update(dict.fromkeys(values, partition))
        else:
            batch = WriteBatch(raw_mode=True)
            for key, value in encoded.items():
                batch.put(key, value)
            store._db_for_partition(partition).write(batch)
        for key, value in encoded.items():
            outbox.add(changelog, key, value, partition=partition)
        tp = TP(changelog, partition)
        outbox.on_delivered(
            changelog, partition, lambda offset: store.set_persisted_offset(tp, offset)
        )


def store_options(memory_mb: int, write_mb_per_s: int = 0) -> dict[str, int]:
    """Faust's defaults give every partition a 2 GiB block cache and 3 x 64 MiB write buffers;
    a worker holding several partitions would outgrow any container. Budget them instead.

    Three quarters go to the two write buffers: every event rewrites its order, and larger
    memtables mean fewer flushes and compactions competing with the worker for the CPU; the
    block cache matters less, as updates mostly read recent orders (bench/PROFILE.md, session 5).
    ``write_mb_per_s`` caps the partition's flush and compaction writes (0: no cap; see
    :class:`OrdersStoreOptions`).
    """
    budget = memory_mb * 1024 * 1024
    return {
        "write_buffer_size": budget * 3 // 8,
        "max_write_buffer_number": 2,
        "block_cache_size": budget // 4,
        "target_file_size_base": budget // 2,
        "write_mb_per_s": write_mb_per_s,
    }


@functools.cache
def flushes_yielding_env() -> Env:
    """RocksDB's environment (its thread pools, one per process) with the flush threads at the
    lowest CPU priority (nice 19), so that on a core they share, the event loop goes first.

    Every partition takes the same share of the load, so all of them flush within a second or
    two of each other: 0.2-0.3 of a core for a second, in which the loop, needing ~0.75 of one
    at 80% load, waited for a core 11-17% of the time against 3-5% otherwise, and fell behind.
    A flush now yields its core to the loop and takes the idle time of the other one. Six
    alternated pairs at the same load: p99 at 11,200 events/s 49-149 ms (median 124) against
    129-232 (median 156), lower in five pairs and even in one; drains unchanged. Compaction
    threads keep their priority: starved of CPU, compactions left reads going through more
    files and slowed the drain (bench/PROFILE.md, sessions 10 and 19).
    """
    env = Env()
    env.lower_high_priority_thread_pool_cpu_priority()
    return env


class OrdersStoreOptions(RocksDBOptions):
    """Faust's RocksDB options, tuned for a table rewritten on every event.

    No compression: in a write-heavy table RocksDB's background threads take cores the worker
    needs. With the budget split of :func:`store_options` it cuts RocksDB's CPU per write by
    about a third (``python -m bench.store``), for about 2.6 times the disk. Kafka Streams' own
    RocksDB store runs without compression by default too.

    Small compactions: new orders have keys all over the key space, so an L0 compaction
    rewrites every file of the level below it. With RocksDB's 256 MiB first level, which held a
    partition's whole table, and L0 compacted at 8 files, each L0 compaction rewrote the table
    in one burst of half a core for five seconds, during which the latency at 80% load rose to
    hundreds of ms. Now the first level is two of its files (the partition's memory budget) and
    moves down a file at a time, and L0 compacts at RocksDB's 4 files (bench/PROFILE.md,
    session 12).

    Capped writes: every partition takes the same share of the load, so all of them fill their
    memtables, flush and compact within a second or two of each other: a few hundred MB
    rewritten at once, a whole core for a second or more, and the p50 at 80% load rose to
    50-210 ms while it lasted. RocksDB's rate limiter paces each partition's compaction writes
    (flushes go first) at ``write_mb_per_s``, so the same work runs at 0.15-0.3 of a core over
    several seconds. RocksDB runs one compaction at a time per process, so the cap
    also bounds what the worker compacts: the default, 64 MiB/s, is about three times what four
    partitions wrote together draining at full speed here (bench/PROFILE.md, session 13).

    Flushes at the lowest CPU priority, so that they give way to the event loop
    (:func:`flushes_yielding_env`).
    """

    def __init__(self, *, write_mb_per_s: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write_mb_per_s = write_mb_per_s

    def as_options(self) -> Options:
        options = super().as_options()
        options.set_compression_type(DBCompressionType.none())
        options.set_env(flushes_yielding_env())
        options.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER)
        options.set_max_bytes_for_level_base(2 * self.target_file_size_base)
        if self.write_mb_per_s:
            # RocksDB's own defaults for the rest: refilled every 100 ms, flushes served first.
            options.set_ratelimiter(self.write_mb_per_s * 1024 * 1024, 100_000, 10)
        # A log file lives until every column family with writes in it has flushed, and the
        # offsets' one hardly ever fills its memtable: past this size RocksDB flushes it.
        options.set_max_total_wal_size(2 * self.write_buffer_size * self.max_write_buffer_number)
        return options

    def open(self, path: Path, *, read_only: bool = False) -> Rdict:
        """The partition's RocksDB, with the persisted offset in a column family of its own.

        Faust keeps it among the orders, under a key that sorts before them, and rewrites it
        after every changelog delivery, so every table file's key range reached from that key
        to its newest order, overlapping the files of the levels below. RocksDB moves a file
        down a level without rewriting it only when its range overlaps nothing there. With
        order ids that grow (a shop's order numbers, the benchmark's), the orders then stay
        where they were written, and the CPU per write of new orders, RocksDB's threads
        included, about halves (``python -m bench.store``; bench/PROFILE.md, session 18).
        ``read_only`` is ignored, as in Faust's own rocksdict path.
        """
        options = self.as_options()
        options.create_missing_column_families(True)
        offsets = Options(raw_mode=True)
        # One key, rewritten: a small memtable, not RocksDB's 64 MiB outside the memory budget.
        offsets.set_write_buffer_size(OFFSETS_WRITE_BUFFER)
        db = Rdict(
            str(path),
            options=options,
            column_families={OFFSETS: offsets},
            access_type=AccessType.read_write(),
        )
        db.set_read_options(ReadOptions())
        _move_offset(db)
        return db


class OrdersStore(RocksDBStore):
    """Faust's RocksDB store (rocksdict) with :class:`OrdersStoreOptions`."""

    rocksdb_options: OrdersStoreOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise TypeError("the orders store needs rocksdict")
        # Faust's __init__ has taken its own keys (driver, read_only) out of self.options.
        self.rocksdb_options = OrdersStoreOptions(**(self.options or {}), use_rocksdict=True)

    def persisted_offset(self, tp: TP) -> int | None:
        return get_persisted_offset(self._db_for_partition(tp.partition))

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        put_persisted_offset(self._db_for_partition(tp.partition), offset)


def get_persisted_offset(db: Rdict) -> int | None:
    """The changelog offset that a partition's RocksDB (:meth:`OrdersStoreOptions.open`) holds.

    Read once per recovery: rocksdict flushes a column family when its ``Rdict`` is dropped.
    """
    offset = db.get_column_family(OFFSETS).get(RocksDBStore.offset_key)
    return None if offset is None else int(offset)


def put_persisted_offset(db: Rdict, offset: int) -> None:
    # Through a handle and a write batch, as an Rdict of the column family would flush it when
    # dropped (a blocking flush per delivery); and not kept, as Faust closes a revoked
    # partition's RocksDB by dropping its references to it.
    batch = WriteBatch(raw_mode=True)
    batch.put(RocksDBStore.offset_key, str(offset).encode(), db.get_column_family_handle(OFFSETS))
    db.write(batch)


def _move_offset(db: Rdict) -> None:
    """Moves the offset of a partition written before the offsets had a column family."""
    old = db.get(RocksDBStore.offset_key)
    if old is None:
        return
    batch = WriteBatch(raw_mode=True)
    if get_persisted_offset(db) is None:
        batch.put(RocksDBStore.offset_key, old, db.get_column_family_handle(OFFSETS))
    batch.delete(RocksDBStore.offset_key)
    db.write(batch)


def store_url(table_name: str) -> str:
    """The URL that gives a Faust table :class:`OrdersStore`, registered under its scheme in
    Faust's store registry (where Faust looks stores up) by this call."""
    stores.STORES.aliases.setdefault(STORE_SCHEME, f"{__name__}:{OrdersStore.__name__}")
    # The path names the files, as Faust's default (rocksdb:<table>) does: the same directories.
    return f"{STORE_SCHEME}:{table_name}"
