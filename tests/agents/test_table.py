"""The orders table written a batch at a time, on Faust's own RocksDB store (no Kafka needed):
what Faust reads back, where the changelog records go, and the offset Faust recovers from."""

from __future__ import annotations

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
from tests.rocksdb_files import options_file

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
    # Kept apart from the orders: what Faust iterates (and a table file's key range) is orders.
    assert list(store._db_for_partition(1).keys()) == [b"o-1"]


async def test_each_partition_opens_with_the_tuned_options_inside_the_memory_budget(
    tmp_path: Path,
) -> None:
    with offline_processor(
        tmp_path,
        store=Store.ROCKSDB,
        partitions=PARTITIONS,
        rocksdb_memory_mb=64,
        rocksdb_write_mb_per_s=17,
    ) as processor:
        store = processor.orders.data
        assert isinstance(store, OrdersStore)
        OrdersTable(processor.orders).put_many(1, {b"o-1": order("o-1", 1)}, Outbox())
        options = options_file(store.partition_path(1))

    assert options["compression"] == "kNoCompression"
    assert int(options["level0_file_num_compaction_trigger"]) == L0_COMPACTION_TRIGGER
    write_buffers = int(options["write_buffer_size"]) * int(options["max_write_buffer_number"])
    block_cache = 64 * 1024 * 1024 // 4  # not in the OPTIONS file; what we asked for instead
    assert store.rocksdb_options.block_cache_size == block_cache
    assert write_buffers + block_cache == 64 * 1024 * 1024
    # The write cap: RocksDB records no rate limiter in OPTIONS, but syncs every MiB with one.
    assert store.rocksdb_options.write_mb_per_s == 17
    assert int(options["bytes_per_sync"]) == 2**20
