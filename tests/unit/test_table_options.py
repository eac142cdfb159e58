"""The orders store's RocksDB: its options, as RocksDB itself records them in the OPTIONS file it
writes beside a database it opens, and where it keeps the changelog offset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from rocksdict import Options, Rdict

from processor.table import (
    L0_COMPACTION_TRIGGER,
    OFFSETS,
    OFFSETS_WRITE_BUFFER,
    OrdersStoreOptions,
    get_persisted_offset,
    put_persisted_offset,
    store_options,
)
from tests.rocksdb_files import logged_option, options_file


def partition_options(memory_mb: int = 32, write_mb_per_s: int = 0) -> OrdersStoreOptions:
    return OrdersStoreOptions(**store_options(memory_mb, write_mb_per_s), use_rocksdict=True)


def recorded_options(path: Path, memory_mb: int, write_mb_per_s: int = 0) -> dict[str, str]:
    partition_options(memory_mb, write_mb_per_s).open(path).close()
    return options_file(path)


@pytest.mark.parametrize("memory_mb", [32, 128])
def test_a_partition_store_is_budgeted_uncompressed_and_has_a_small_first_level(
    tmp_path: Path, memory_mb: int
) -> None:
    options = recorded_options(tmp_path / "p0", memory_mb)
    budget = memory_mb * 2**20
    assert options["compression"] == "kNoCompression"
    assert int(options["write_buffer_size"]) == budget * 3 // 8
    assert int(options["level0_file_num_compaction_trigger"]) == L0_COMPACTION_TRIGGER
    # Two files of the first level, the budget: not RocksDB's 256 MiB, which held a partition's
    # whole table and was rewritten by every L0 compaction.
    assert int(options["target_file_size_base"]) == budget // 2
    assert int(options["max_bytes_for_level_base"]) == budget


def test_a_write_cap_gives_the_store_a_rate_limiter(tmp_path: Path) -> None:
    capped = recorded_options(tmp_path / "capped", 32, write_mb_per_s=64)
    uncapped = recorded_options(tmp_path / "uncapped", 32, write_mb_per_s=0)
    # The OPTIONS file does not record the limiter itself; RocksDB's LOG does, and a limiter
    # makes RocksDB sync its files every MiB (bytes_per_sync) instead of leaving it to the OS.
    assert logged_option(tmp_path / "capped", "rate_limiter") != "(nil)"
    assert logged_option(tmp_path / "uncapped", "rate_limiter") == "(nil)"
    assert int(capped["bytes_per_sync"]) == 2**20
    assert int(uncapped["bytes_per_sync"]) == 0


def rocksdb_threads_nice() -> dict[str, set[int]]:
    """The nice value of each of this process's RocksDB threads, by thread name."""
    found: dict[str, set[int]] = {}
    for tid in os.listdir("/proc/self/task"):
        name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        if name.startswith("rocksdb:"):
            found.setdefault(name, set()).add(os.getpriority(os.PRIO_PROCESS, int(tid)))
    return found


def test_flushes_run_at_the_lowest_cpu_priority_and_compactions_do_not(tmp_path: Path) -> None:
    db = partition_options().open(tmp_path / "p0")
    db.put(b"o-1", b"{}")
    db.flush()  # a job for the flush pool, whose thread takes its priority before running it
    db.close()
    # RocksDB's thread pools are the process's, so this holds for every partition's flushes.
    nice = rocksdb_threads_nice()
    assert nice["rocksdb:high"] == {19}
    assert nice["rocksdb:low"] == {0}


def test_the_offset_has_a_column_family_of_its_own_with_a_small_memtable(tmp_path: Path) -> None:
    db = partition_options().open(tmp_path / "p0")
    db.put(b"o-1", b"{}")
    put_persisted_offset(db, 41)
    put_persisted_offset(db, 42)
    # The orders' key space holds orders only, so a table file's key range is its orders'.
    assert list(db.keys()) == [b"o-1"]
    assert get_persisted_offset(db) == 42
    db.close()

    offsets = options_file(tmp_path / "p0", OFFSETS)
    assert int(offsets["write_buffer_size"]) == OFFSETS_WRITE_BUFFER
    orders = options_file(tmp_path / "p0")
    # A log file lives until the offsets' memtable is flushed too; this bounds how long.
    buffers = int(orders["write_buffer_size"]) * int(orders["max_write_buffer_number"])
    assert int(orders["max_total_wal_size"]) == 2 * buffers
    # And the offset is there after a restart.
    assert get_persisted_offset(partition_options().open(tmp_path / "p0")) == 42


def test_a_partition_written_before_keeps_its_offset_in_the_new_place(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    before = Rdict(str(path), options=options)
    # Faust's own layout, as this store wrote it before the offsets had a column family.
    before.put(RocksDBStore.offset_key, b"41")
    before.put(b"o-1", b"{}")
    before.close()
    del before

    db = partition_options().open(path)
    assert get_persisted_offset(db) == 41
    assert list(db.keys()) == [b"o-1"]
