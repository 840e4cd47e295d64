"""Kafka's default partitioner, with the visitor ids' hashes kept: the same partitions."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from streams.worker import tables
from streams.worker.tables import partition_of, partitioner


def test_partitions_are_kafkas_default_partitioners_for_every_key() -> None:
    rng = random.Random(4)
    keys = [rng.randbytes(rng.randrange(0, 80)) for _ in range(2_000)] + [b"v-1", b""]
    all_partitions = list(range(12))
    for key in keys:
        expected = DefaultPartitioner()(key, all_partitions, all_partitions)
        assert partition_of(key, 12) == expected
        assert partitioner(key, all_partitions, all_partitions) == expected
        assert partition_of(key, 12) == expected  # kept, and still right


def test_the_producers_partitioner_keeps_no_key_of_its_own() -> None:
    # Keys made by orjson.dumps hold 4 KB each: kept, they grew a worker by 180 MB.
    before = len(tables._hashes)
    for n in range(1_000):
        partitioner(f'["shop","/p/{n}",{n}]'.encode(), [0, 1, 2], [0, 1, 2])
    assert len(tables._hashes) == before


def test_the_kept_hashes_are_bounded() -> None:
    for n in range(tables._HASHES_MAX + 10):
        partition_of(f"visitor-{n}".encode(), 8)
    assert len(tables._hashes) <= tables._HASHES_MAX
