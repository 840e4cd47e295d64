"""The journey sweep reads a partition's RocksDB directly, where Faust's store also keeps
the partition's persisted changelog offset (under ``Store.offset_key``, an integer as
text). Found by the chaos soak (docs/reliability.md): a worker that had recovered a
partition crashed in the sweep with ``TypeError: 'int' object is not subscriptable``."""

from __future__ import annotations

import asyncio

from faust.stores.rocksdb import Store

from tests.unit.worker.standins import StandInApp, click
from tests.unit.worker.test_worker_event_time import HOUR, T0, feed, others, pipeline_on


def test_the_sweep_leaves_fausts_persisted_offset_alone() -> None:
    app = StandInApp()
    pipeline = pipeline_on(app)
    feed(pipeline, [click("old", 0, "page_view", T0)])
    feed(pipeline, others(T0 + 31 * 24 * HOUR + 2 * HOUR, "a", "b", "c"))  # past the horizon
    app.table[Store.offset_key] = b"673"  # as Faust's RocksDB store writes it

    asyncio.run(pipeline.sweep_journeys())

    assert b"old" not in app.table
    assert app.table[Store.offset_key] == b"673"
