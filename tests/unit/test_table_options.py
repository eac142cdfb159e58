"""The orders store's RocksDB options, as RocksDB itself records them in the OPTIONS file it
writes beside a database it opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.table import L0_COMPACTION_TRIGGER, OrdersStoreOptions, store_options


def recorded_options(path: Path, memory_mb: int) -> dict[str, str]:
    db = OrdersStoreOptions(**store_options(memory_mb), use_rocksdict=True).open(path)
    db.close()
    text = sorted(path.glob("OPTIONS-*"))[-1].read_text()
    return dict(
        line.strip().split("=", 1) for line in text.splitlines() if "=" in line and "[" not in line
    )


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
