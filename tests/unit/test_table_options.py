"""The orders store's RocksDB options, as RocksDB itself records them in the OPTIONS file it
writes beside a database it opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.table import L0_COMPACTION_TRIGGER, OrdersStoreOptions, store_options
from tests.rocksdb_files import logged_option, options_file


def recorded_options(path: Path, memory_mb: int, write_mb_per_s: int = 0) -> dict[str, str]:
    options = OrdersStoreOptions(**store_options(memory_mb, write_mb_per_s), use_rocksdict=True)
    options.open(path).close()
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
