"""The orders table's RocksDB, alone: CPU per write under Faust's options and ours.

    .venv/bin/python -m bench.store --events 400000

Every event rewrites its order (~1.4 KB of JSON), so RocksDB flushes and compacts all the time,
on threads of its own that compete with the worker for the cores (bench/PROFILE.md, session 5).
This replays the benchmark's load generator through the pure pipeline (parse, apply, encode) into
one table partition, written as the worker writes it (a multi-get, then one write batch per
batch of events, and the changelog offset after each), as phase 2 of the benchmark does; then
``--fresh`` new orders on top of them, one write each, as the latency levels of phase 3 do. It
reports the process's CPU per write of each, background threads included, once RocksDB has no
flush or compaction left to run. No Kafka, no Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from rocksdict import Rdict, WriteBatch

from bench import loadgen
from processor import codec
from processor.contacts import Identifier, Match
from processor.errors import Rejected
from processor.events import Status, parse_event
from processor.orders import Order, Source, apply
from processor.settings import Settings
from processor.table import OrdersStoreOptions, put_persisted_offset, store_options

BATCH = 200
FRESH_KEY = "fresh-ord-{:08d}"


@dataclass(frozen=True)
class Variant:
    """How a variant opens the partition from a memory budget, and keeps the changelog offset."""

    open: Callable[[Path, int], Rdict]
    write_offset: Callable[[Rdict, int], None]


def _faust_offset(db: Rdict, offset: int) -> None:
    """Faust's own: among the orders, under a key that sorts before them."""
    db.put(RocksDBStore.offset_key, str(offset).encode())


def _faust_options(mb: int) -> RocksDBOptions:
    # Faust's RocksDB options as this project set them before session 5: half the budget
    # block cache, a quarter each of two write buffers, RocksDB's compression and L0 trigger.
    return RocksDBOptions(
        block_cache_size=mb * 1024 * 1024 // 2,
        write_buffer_size=mb * 1024 * 1024 // 4,
        max_write_buffer_number=2,
        target_file_size_base=mb * 1024 * 1024 // 2,
        use_rocksdict=True,
    )


def _orders_options(mb: int) -> OrdersStoreOptions:
    return OrdersStoreOptions(**store_options(mb), use_rocksdict=True)


VARIANTS: dict[str, Variant] = {
    "faust": Variant(lambda path, mb: _faust_options(mb).open(path), _faust_offset),
    # Ours before session 18: the offset still among the orders.
    "orders-offset-among-orders": Variant(
        lambda path, mb: Rdict(str(path), options=_orders_options(mb).as_options()), _faust_offset
    ),
    "orders": Variant(lambda path, mb: _orders_options(mb).open(path), put_persisted_offset),
}


def stored_orders(events: int, contacts: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) as the worker stores them, for the load generator's good events."""
    orders: dict[str, Order] = {}
    now = "2026-11-30T12:00:00.000+00:00"
    for offset, record in enumerate(loadgen.backlog(events, contacts, bad_ratio=0.0)):
        try:
            event = parse_event(record.value)
            order_id = event.external_order_id
            contact = Match(f"c{offset % contacts:07d}", Identifier("email", "email", "x@y.z"))
            transition = apply(
                orders.get(order_id),
                event,
                source=Source("events", 0, offset),
                now=now,
                contact=contact,
            )
        except Rejected:
            continue
        orders[order_id] = transition.order
        if transition.order.status in (Status.DELIVERED, Status.CANCELLED):
            # Done: dropped here to keep this process small; the table keeps it.
            del orders[order_id]
        yield order_id.encode(), codec.dumps(transition.order.to_dict())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread, RocksDB's among them
    return usage.ru_utime + usage.ru_stime


def _settled(db: Rdict) -> bool:
    return not any(
        db.property_int_value(name)
        for name in (
            "rocksdb.num-running-compactions",
            "rocksdb.num-running-flushes",
            "rocksdb.compaction-pending",
            "rocksdb.mem-table-flush-pending",
        )
    )


def _write(db: Rdict, variant: Variant, writes: Sequence[tuple[bytes, bytes]]) -> None:
    for start in range(0, len(writes), BATCH):
        batch = writes[start : start + BATCH]
        db.get([key for key, _ in batch])
        write = WriteBatch(raw_mode=True)
        for key, value in batch:
            write.put(key, value)
        db.write(write)
        variant.write_offset(db, start)


def _settle(db: Rdict) -> None:
    while not _settled(db):
        time.sleep(0.05)


def fresh_orders(writes: Sequence[tuple[bytes, bytes]], count: int) -> list[tuple[bytes, bytes]]:
    """New orders, each written once, cycling through the stored values for their bytes."""
    return [(FRESH_KEY.format(i).encode(), writes[i % len(writes)][1]) for i in range(count)]


def measure(
    name: str,
    memory_mb: int,
    writes: Sequence[tuple[bytes, bytes]],
    fresh: Sequence[tuple[bytes, bytes]],
) -> dict[str, float]:
    variant = VARIANTS[name]
    path = Path(tempfile.mkdtemp(prefix=f"bench-store-{name}-"))
    try:
        db = variant.open(path, memory_mb)
        cpu, started = _cpu_seconds(), time.perf_counter()
        _write(db, variant, writes)
        foreground = time.perf_counter() - started
        _settle(db)
        total = _cpu_seconds() - cpu
        cpu = _cpu_seconds()
        _write(db, variant, fresh)
        _settle(db)
        fresh_total = _cpu_seconds() - cpu
        db.close()
        disk = sum(f.stat().st_size for f in path.iterdir())
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return {
        "writes": len(writes),
        "cpuSeconds": round(total, 2),
        "cpuUsPerWrite": round(total / len(writes) * 1e6, 1),
        "writeSeconds": round(foreground, 2),
        "freshWrites": len(fresh),
        "freshCpuUsPerWrite": round(fresh_total / len(fresh) * 1e6, 1) if fresh else 0.0,
        "diskMb": round(disk / 1e6, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=400_000, help="load generator events")
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts they name")
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=Settings.from_env({}).rocksdb_memory_mb,
        help="RocksDB budget of the partition (PROCESSOR_ROCKSDB_MEMORY_MB)",
    )
    parser.add_argument(
        "--fresh", type=int, default=150_000, help="new orders written after the backlog's"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, alternated")
    args = parser.parse_args(argv)

    print(f"encoding the orders of {args.events:,} events ...", flush=True)
    writes = list(stored_orders(args.events, args.contacts))
    size = sum(len(v) for _, v in writes) / len(writes)
    print(f"{len(writes):,} writes, {size:,.0f} B on average; pid {os.getpid()}", flush=True)
    fresh = fresh_orders(writes, args.fresh)
    for round_ in range(1, args.rounds + 1):
        for name in VARIANTS:
            result = measure(name, args.memory_mb, writes, fresh)
            print(json.dumps({"variant": name, "round": round_, **result}), flush=True)


if __name__ == "__main__":
    main()
