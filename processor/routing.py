"""Which partition owns an order. Pure.

Kafka's Java client, aiokafka and Faust partition a key with murmur2; the orders table keeps
each order in the changelog partition of the event that wrote it. An event on any other
partition would be applied against the wrong table partition, so it is re-keyed first.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

#: Keys whose partition is remembered: aiokafka's murmur2 is pure Python (~20 us for an order
#: id), and an order's events, like a contact's RFM records, come again and again.
CACHED_KEYS = 65_536


@lru_cache(maxsize=CACHED_KEYS)
def partition_for(key: bytes, partitions: int) -> int:
    return partition_of(key, partitions)


def partition_of(data: bytes, partitions: int) -> int:
    """:func:`partition_for` without the cache, for data that is not a key (a record's value)."""
    return (murmur2(data) & 0x7FFFFFFF) % partitions
