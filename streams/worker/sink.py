"""What a batch writes to Kafka, sent through the producer directly and acknowledged once.

Faust's own paths cost about 100 µs a record on our machines: ``Topic.send`` builds a
``FutureMessage`` and callbacks for each record, and every table write goes through
Faust's producer buffer, one awaited send at a time, with a RocksDB write of the
persisted offset for each record on the way back. A batch of 500 events writes some 600
records. Here a record is one call to the producer (Faust's ``Producer.send``, the
driver-level send that ``Topic.send`` ends in) and a table write is a write to the
partition's RocksDB database plus its changelog record; ``flush`` waits for every ack
at once and then records each changelog partition's persisted offset once, as Faust's
``_on_changelog_sent`` does.
Recovery, standbys and rebalances are Faust's as before: the changelog records are the
ones Faust writes (same topic, key, value and partition).

Under ``exactly_once`` every record goes through Faust's own paths (``Topic.send``,
``Table.send_changelog``), which carry its transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, cast

import faust
from faust.types import TP, TableT
from faust.types.stores import StoreT

from streams.worker.faust_adapter import partition_context, partition_db

Headers = list[tuple[str, bytes]] | None


class Sink:
    """Collects one batch's records and table writes; ``flush`` waits for their acks."""

    def __init__(self, app: faust.App, *, transactional: bool) -> None:
        self.app = app
        self.transactional = transactional
        self._sent: list[Awaitable[Any]] = []
        # (table, partition, ack) of each changelog record sent since the last flush
        self._logged: list[tuple[TableT[Any, Any], int, Awaitable[Any]]] = []

    async def send(
        self,
        topic: faust.TopicT,
        key: bytes,
        value: bytes | None,
        headers: Headers = None,
        partition: int | None = None,
    ) -> None:
        """Send a record to ``partition``, or where Kafka's default partitioner puts its key."""
        if self.transactional:
            sent = await topic.send(key=key, value=value, partition=partition, headers=headers)
            self._sent.append(sent)
            return
        name = topic.get_topic_name()
        self._sent.append(await self.app.producer.send(name, key, value, partition, None, headers))

    async def put(
        self, table: TableT[Any, Any], partition: int, key: bytes, value: bytes | None
    ) -> None:
        """Write (or, for None, delete) a key of a table in the given partition: its RocksDB
        database now, the changelog record to the same partition, acknowledged by ``flush``."""
        db = partition_db(table, partition)
        if value is None:
            db.delete(key)
        else:
            db.put(key, value)
        if self.transactional:
            # Faust's own send, in the transaction of the partition's (stand-in) event;
            # it notes the persisted offset itself.
            with partition_context(partition):
                self._sent.append(table.send_changelog(partition, key, value))
            return
        changelog = table.changelog_topic.get_topic_name()
        ack = await self.app.producer.send(changelog, key, value, partition, None, None)
        self._logged.append((table, partition, ack))

    async def flush(self) -> None:
        """Wait until Kafka acknowledged everything sent; note the changelogs' offsets."""
        sent, logged = self._sent, self._logged
        self._sent, self._logged = [], []
        await asyncio.gather(*sent)
        if not logged:
            return
        metadata = await asyncio.gather(*(ack for _, _, ack in logged))
        newest: dict[tuple[int, int], tuple[TableT[Any, Any], int]] = {}
        for (table, partition, _), meta in zip(logged, metadata, strict=True):
            slot = (id(table), partition)
            known = newest.get(slot)
            if known is None or meta.offset > known[1]:
                newest[slot] = (table, meta.offset)
        for (_, partition), (table, offset) in newest.items():
            tp = TP(table.changelog_topic.get_topic_name(), partition)
            # a StoreT (RocksDB here); TableT types its data as a plain mapping
            cast(StoreT, table.data).set_persisted_offset(tp, offset)
