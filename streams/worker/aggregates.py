"""The dwell aggregator: merges every worker's partials into one record per page and window.

Workers fold their page activity (``streams.core.dwell``) into partials and publish them
every ``dwell_flush_s`` to ``beckon.dwell.updates``, keyed by ``[site_id, page, window
start]``. The aggregator reads that topic (through the worker's intake,
``streams.worker.intake``, or a Faust agent under ``exactly_once``; so each page and window is
owned by one worker, whatever visitors it came from), adds each partial to the
changelogged table ``dwell`` and publishes the merged record to the compacted
``beckon.dwell``, where the dashboard reads the latest record of every page and
window. Windows older than
``dwell_retention_s`` behind the newest window seen are deleted from the table, with a
tombstone on ``beckon.dwell``.

Guarantee: at least once for the partials the aggregator reads. The merged record is sent
and acknowledged before the table is written, so a crash before the write sends the same
record again; a crash after it, before Faust commits the input offsets, counts those
partials twice. A worker killed before its next flush loses what it had gathered
(docs/worker.md).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Sequence
from typing import Any, cast

import faust
import orjson

from streams.core.dwell import Key, PageWindow, decode_key
from streams.settings import Settings
from streams.worker.faust_adapter import share_table_memory
from streams.worker.intake import Record
from streams.worker.sink import Sink
from streams.worker.tables import page_partition, read

log = logging.getLogger(__name__)


class DwellAggregator:
    """The table that merges dwell partials, in one worker process."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.settings = settings
        self.window_ms = settings.dwell_window_s * 1000
        self.retention_ms = settings.dwell_retention_s * 1000
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw"}  # fmt: skip
        self.updates = app.topic(settings.topic_dwell_updates, **raw)
        self.records = app.topic(settings.topic_dwell, **raw)
        options = settings.rocksdb_options()
        self.table = app.Table(
            "dwell", partitions=settings.partitions, use_partitioner=True,
            key_type=bytes, value_type=bytes, options=options,
        )  # fmt: skip
        share_table_memory(self.table, settings.table_memory_bytes, options)
        self.sink = Sink(app, transactional=settings.processing_guarantee == "exactly_once")
        self.lock = asyncio.Lock()
        self.windows: list[tuple[int, bytes]] = []  # heap of (window start, key) held here
        self.newest = -1  # the newest window seen, for retention
        self.table.on_recover(self.rebuild_index)

    async def take(self, batch: Sequence[Record]) -> None:
        """A batch from the intake (``streams.worker.intake``): a fetch's dwell updates."""
        async with self.lock:
            await self.handle(batch)

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        """The agent that reads the dwell updates under ``exactly_once``."""
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(1000, 0.2):
            await self.take([event.message for event in batch])

    async def handle(self, batch: Sequence[Record]) -> None:
        merged: dict[bytes, tuple[Key, PageWindow]] = {}
        n = self.settings.partitions
        for message in batch:
            raw_key, value = message.key, message.value
            try:
                key = decode_key(raw_key or b"")
                partial = PageWindow.from_record(orjson.loads(value or b""))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # An internal topic: only workers write it. Say so loudly, go on.
                where = f"{message.topic}[{message.partition}]@{message.offset}"
                log.warning("skipped a malformed dwell update at %s: %s", where, exc)
                continue
            assert raw_key is not None  # decode_key read it
            known = merged.get(raw_key)
            if known is None:
                stored = read(self.table, page_partition(raw_key, n), raw_key)
                if stored is None:
                    agg = PageWindow()
                    heapq.heappush(self.windows, (key[2], raw_key))
                else:
                    agg = PageWindow.from_record(orjson.loads(stored))
                known = merged[raw_key] = (key, agg)
            known[1].merge(partial)
        if not merged:
            return
        records = {
            raw_key: orjson.dumps(agg.to_record(*key, self.window_ms))
            for raw_key, (key, agg) in merged.items()
        }
        await self._send([(k, v) for k, v in records.items()])
        for raw_key, value in records.items():
            await self.sink.put(self.table, page_partition(raw_key, n), raw_key, value)
            self.newest = max(self.newest, merged[raw_key][0][2])
        await self.sink.flush()
        await self._expire()

    async def _expire(self) -> None:
        """Delete the windows that fell out of retention, with a tombstone each."""
        horizon = self.newest - self.retention_ms
        old: list[bytes] = []
        while self.windows and self.windows[0][0] < horizon:
            old.append(heapq.heappop(self.windows)[1])
        old = [k for k in dict.fromkeys(old) if k in self.table]
        if not old:
            return
        await self._send([(k, None) for k in old])
        n = self.settings.partitions
        for raw_key in old:
            await self.sink.put(self.table, page_partition(raw_key, n), raw_key, None)
        await self.sink.flush()

    async def _send(self, records: list[tuple[bytes, bytes | None]]) -> None:
        n = self.settings.partitions
        for key, value in records:
            await self.sink.send(self.records, key, value, partition=page_partition(key, n))
        await self.sink.flush()

    async def rebuild_index(self) -> None:
        """After recovery or a rebalance: the windows this worker now holds."""
        async with self.lock:
            self.windows = []
            for raw_key in self.table:
                window = decode_key(raw_key)[2]
                self.windows.append((window, raw_key))
                self.newest = max(self.newest, window)
            heapq.heapify(self.windows)
