"""The orders table written a batch at a time, on Faust's own RocksDB store (no Kafka needed):
what Faust reads back, where the changelog records go, and the offset Faust recovers from."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.types import TP

from processor.app import Processor
from processor.outbox import Outbox
from processor.settings import Store
from processor.table import L0_COMPACTION_TRIGGER, OrdersStore, OrdersTable
from tests.agents.support import offline_processor

PARTITIONS = 4


@pytest.fixture
async def processor(tmp_path: Path) -> AsyncIterator[Processor]:
    # Async, so that Faust's services take the test's event loop rather than leave one behind.
    with offline_processor(tmp_path, store=Store.ROCKSDB, partitions=PARTITIONS) as processor:
        yield processor


def order(order_id: str, version: int) -> dict[str, Any]:
    return {"externalOrderId": order_id, "totalCost": "12.50", "version": version}


async def test_a_batch_written_is_read_back_by_faust_and_by_the_next_batch(
    processor: Processor,
) -> None:
    table = OrdersTable(processor.orders)
    outbox = Outbox()
    table.put_many(2, {b"o-1": order("o-1", 1), b"o-2": order("o-2", 3)}, outbox)

    stored = table.get_many(2, [b"o-1", b"o-2", b"o-3"])
    assert [OrdersTable.decode(s) for s in stored] == [order("o-1", 1), order("o-2", 3), None]
    # Faust's own read, outside any event (what /orders/{id} does), finds the same value.
    assert processor.orders.get(b"o-2") == order("o-2", 3)
    # The table is partitioned: another partition's database does not hold the key.
    assert table.get_many(1, [b"o-1"]) == [None]


async def test_changelog_records_go_to_the_outbox_on_the_partition_written(
    processor: Processor,
) -> None:
    table = OrdersTable(processor.orders)
    outbox = Outbox()
    table.put_many(3, {b"o-1": order("o-1", 2)}, outbox)
    changelog = processor.orders.changelog_topic.get_topic_name()
    [record] = outbox.records
    assert (record.topic, record.partition, record.key) == (changelog, 3, b"o-1")
    assert record.value is not None and orjson.loads(record.value) == order("o-1", 2)


async def test_the_persisted_offset_follows_delivery_not_the_write(processor: Processor) -> None:
    # Recovery reads the changelog from the persisted offset on: it may only move once the
    # records up to it are on the broker.
    table = OrdersTable(processor.orders)
    store = processor.orders.data
    changelog = processor.orders.changelog_topic.get_topic_name()
    outbox = Outbox()
    table.put_many(1, {b"o-1": order("o-1", 1)}, outbox)
    assert store.persisted_offset(TP(changelog, 1)) is None
    outbox.delivered({(changelog, 1): 41})
    assert store.persisted_offset(TP(changelog, 1)) == 41
    assert store.persisted_offset(TP(changelog, 0)) is None


def rocksdb_options_file(db_path: Path) -> dict[str, str]:
    """What RocksDB itself says it opened with (its OPTIONS file), not what we asked for."""
    [path] = sorted(db_path.glob("OPTIONS-*"))[-1:]
    pairs = (line.strip().partition("=") for line in path.read_text().splitlines())
    return {key: value for key, _, value in pairs if value}


async def test_each_partition_opens_with_the_tuned_options_inside_the_memory_budget(
    tmp_path: Path,
) -> None:
    with offline_processor(
        tmp_path, store=Store.ROCKSDB, partitions=PARTITIONS, rocksdb_memory_mb=64
    ) as processor:
        store = processor.orders.data
        assert isinstance(store, OrdersStore)
        OrdersTable(processor.orders).put_many(1, {b"o-1": order("o-1", 1)}, Outbox())
        options = rocksdb_options_file(store.partition_path(1))

    assert options["compression"] == "kNoCompression"
    assert int(options["level0_file_num_compaction_trigger"]) == L0_COMPACTION_TRIGGER
    write_buffers = int(options["write_buffer_size"]) * int(options["max_write_buffer_number"])
    block_cache = 64 * 1024 * 1024 // 4  # not in the OPTIONS file; what we asked for instead
    assert store.rocksdb_options.block_cache_size == block_cache
    assert write_buffers + block_cache == 64 * 1024 * 1024


# Compacts a small RocksDB with the orders store's options in a process of its own (the CPU
# priority of RocksDB's thread pools is the whole process's), then prints the nice value of
# each of its RocksDB threads. A compaction thread lowers its priority when it next takes a job.
NICE_OF_ROCKSDB_THREADS = """
import os, sys, time
from rocksdict import Rdict
from processor.table import L0_COMPACTION_TRIGGER, OrdersStoreOptions

options = OrdersStoreOptions(
    low_priority_compaction=sys.argv[2] == "on", write_buffer_size=64 * 1024, use_rocksdict=True
).as_options()
db = Rdict(sys.argv[1], options)
for flush in range(L0_COMPACTION_TRIGGER + 2):
    for i in range(200):
        db[f"o-{i}".encode()] = os.urandom(500)
    db.flush()
deadline = time.monotonic() + 10
while time.monotonic() < deadline and len(db.live_files()) > L0_COMPACTION_TRIGGER:
    time.sleep(0.05)
task = f"/proc/{os.getpid()}/task"
for tid in os.listdir(task):
    stat = open(f"{task}/{tid}/stat").read()
    end = stat.rindex(")")
    name, nice = stat[stat.index("(") + 1 : end], stat[end + 2 :].split()[16]
    if name.startswith("rocksdb"):
        print(name, nice)
db.close()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are read from /proc")
@pytest.mark.parametrize(("setting", "compaction_nice"), [("on", "19"), ("off", "0")])
def test_compactions_run_at_the_lowest_cpu_priority_unless_turned_off(
    tmp_path: Path, setting: str, compaction_nice: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NICE_OF_ROCKSDB_THREADS, str(tmp_path / "db"), setting],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    threads = [line.split() for line in done.stdout.splitlines()]
    assert ["rocksdb:low", compaction_nice] in threads, done.stdout
    # Flushes keep the process's priority: a memtable waiting on one would stall writes.
    assert all(nice == "0" for name, nice in threads if name == "rocksdb:high"), done.stdout
