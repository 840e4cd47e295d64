"""Writing Faust tables outside stream iteration, in the partition a key belongs to.

Beckon's tables use Kafka's partitioner on their keys (``use_partitioner=True``), so a
key's changelog partition is the one its source topic's producer picks: the worker that
owns a source partition owns the table partition too (co-partitioning).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

from aiokafka.partitioner import murmur2
from faust.streams import _current_event


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as Java's)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class _Message:
    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition


class _PartitionEvent:
    """What Faust's RocksDB store reads of the current event: its message's partition."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


@contextlib.contextmanager
def partition_context(partition: int) -> Iterator[None]:
    # Faust's RocksDB store picks the partition's database from the *current event*, so
    # a table write outside stream iteration fails, and one after a batch of
    # take_events would land in the last event's partition. We write each journey
    # (from a batch or from the timer) as if inside an event of its own partition —
    # the partition its changelog record goes to, too (use_partitioner).
    event = _PartitionEvent(partition)
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)
