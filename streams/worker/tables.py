"""Keys, partitions and table partitions: Kafka's partitioner, and Faust tables read
outside stream iteration, in the partition a key belongs to.

Beckon's tables use Kafka's partitioner on their keys (``use_partitioner=True``), so a
key's changelog partition is the one its source topic's producer picks: the worker that
owns a source partition owns the table partition too (co-partitioning).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from typing import Any, cast

from aiokafka.partitioner import murmur2
from faust.types import TableT

from streams.worker.faust_adapter import held_db

_HASHES_MAX = 1 << 16
_hashes: dict[bytes, int] = {}  # visitor id -> murmur2, for the ids of recent batches


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as Java's).

    murmur2 is pure Python in aiokafka (~5 µs for a visitor id), and a batch asks for
    the same visitor's several times (its journey, its timer, its invitations and
    decisions), so the hashes of the last ~65,000 keys asked for are kept."""
    known = _hashes.get(key)
    if known is None:
        if len(_hashes) >= _HASHES_MAX:
            _hashes.clear()
        known = _hashes[key] = murmur2(key) & 0x7FFFFFFF
    return known % partitions


def page_partition(key: bytes, partitions: int) -> int:
    """The partition of a key on Beckon's own page-keyed topics (the dwell updates and
    records, and the dwell table co-partitioned with them): CRC-32, in C.

    Only workers write these topics, so their keys need not follow Kafka's default
    partitioner; a fast replay sends about one dwell record per event, and murmur2 in
    Python costs ~12 µs for a page key."""
    return zlib.crc32(key) % partitions


def partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """Kafka's default partitioner (aiokafka's ``DefaultPartitioner``), the producer's
    through Faust's ``producer_partitioner``: it reuses the hashes ``partition_of`` kept
    and keeps none of its own. (Keys made by ``orjson.dumps`` hold 4 KB each: a cache of
    every key sent would grow by gigabytes.)"""
    if key is None:
        return random.choice(available or all_partitions)
    known = _hashes.get(key)
    if known is None:
        known = murmur2(key) & 0x7FFFFFFF
    return all_partitions[known % len(all_partitions)]


def read(table: TableT[Any, Any], partition: int, key: bytes) -> bytes | None:
    """A key's value in its partition's database, if this worker holds the partition now:
    None in one it does not (a revoked partition's timers, say), as Faust's own reads
    find nothing there.

    Faust's own ``table.get`` looks a key up twice (``__contains__``, then the value),
    and in every partition's database until its key index knows the key; the worker
    knows the partition already."""
    db = held_db(table, partition)
    return None if db is None else cast(bytes | None, db.get(key))
