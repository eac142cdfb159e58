"""Which partition owns an order. Pure.

Kafka's Java client, aiokafka and Faust partition a key with murmur2; the orders table keeps
each order in the changelog partition of the event that wrote it. An event on any other
partition would be applied against the wrong table partition, so it is re-keyed first.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
