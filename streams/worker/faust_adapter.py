"""Every use of faust-streaming's internals, in one place, checked against 0.15.x.

Beckon keeps Faust's group membership, tables, recovery and commits, and steps below
its public API in a few places for speed (docs/performance.md) or for writes Faust
only makes inside an agent. Each such step is one function here; the rest of the worker
calls these, never a private attribute (``tests/unit/worker/test_faust_adapter.py``
checks). Upgrading faust-streaming means re-reading this module against its source:

- ``fetch_hook``: the consumer class whose fetches the intake reads first
  (``Consumer._wait_next_records``);
- ``acknowledge``: marking offsets handled, as ``Consumer.ack`` does per message
  (``_read_offset``, ``_committed_offset``, ``_acked``, ``_acked_index``, ``_n_acked``),
  and the partition processed, as a stream does (``Monitor.stream_inbound_time``);
- ``committed_offsets``: what the consumer last committed, for the lag metric;
- ``partition_db``, ``held_db``: a table partition's RocksDB database
  (``Store._db_for_partition``, ``Store._dbs``);
- ``partition_context``: the *current event* Faust's RocksDB store reads the partition
  from (``faust.streams._current_event``);
- ``share_table_memory``: the options a table's store opens each partition's RocksDB
  with (``Store.rocksdb_options``, ``RocksDBOptions.as_options``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from time import monotonic
from typing import Any, cast

import faust
import rocksdict
from faust.stores.rocksdb import RocksDBOptions
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP, TableT

# (consumer, records by partition, the partitions active when the fetch began)
OnFetch = Callable[[FaustConsumer, Any, Any], Awaitable[None]]


def fetch_hook(app: faust.App, on_fetch: OnFetch) -> None:
    """Have ``on_fetch`` see each fetch's records before Faust makes messages of them.

    Faust builds its consumer on start from the transport's class; ``on_fetch`` may
    remove records from the fetch (the mapping it is given), and Faust handles the rest.
    """

    class Consumer(FaustConsumer):
        async def _wait_next_records(self, timeout: float) -> Any:
            records, active = await super()._wait_next_records(timeout)
            if records:
                await on_fetch(self, records, active)
            return records, active

    cast(Any, app.transport).Consumer = Consumer


def acknowledge(consumer: FaustConsumer, tp: TP, first: int, last: int) -> None:
    """Mark offsets ``first``..``last`` of ``tp`` handled, as ``Consumer.ack`` does one
    message at a time, so that Faust's commit timer commits past them.

    Offsets skipped since the partition's last acknowledgement (transaction markers,
    records of aborted transactions) are marked too, or Faust would never commit past
    them; offsets below the committed one are not marked again.

    The partition is also noted as processed now (``Monitor.stream_inbound_time``, which
    a Faust stream sets per event): Faust's livelock check reads it, and without it
    logs "Stream has not started processing" for every partition the intake reads
    (1,200 such lines in a 9-minute run).
    """
    consumer.app.monitor.stream_inbound_time[tp] = monotonic()
    read = consumer._read_offset[tp]
    if read is not None and read < first:
        first = read + 1
    committed = consumer._committed_offset[tp]
    if committed is not None:
        first = max(first, committed)
    offsets = range(first, last + 1)
    consumer._acked[tp].extend(offsets)
    consumer._acked_index[tp].update(offsets)
    consumer._n_acked += len(offsets)
    consumer._read_offset[tp] = last


def committed_offsets(consumer: Any) -> Mapping[TP, int | None]:
    """Faust's own record of what it committed per partition (the next offset to read,
    in Kafka's sense); a partition is missing or None before the group's first commit."""
    return cast(Mapping[TP, int | None], getattr(consumer, "_committed_offset", {}))


def partition_db(table: TableT[Any, Any], partition: int) -> Any:
    """The RocksDB database (a rocksdict ``Rdict``) of one partition of a table, opened if
    need be, as Faust's own writes do."""
    return cast(Any, table.data)._db_for_partition(partition)


# Where Faust's RocksDB store keeps a partition's persisted changelog offset, in the
# partition's own database beside the table's keys (faust.stores.rocksdb.Store.offset_key).
OFFSET_KEY = b"__faust\0offset__"


def held_db(table: TableT[Any, Any], partition: int) -> Any | None:
    """The partition's database if this worker holds the partition now, else None."""
    return cast(Any, table.data)._dbs.get(partition)


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
    """Run the block as if inside an event of ``partition``.

    Faust's RocksDB store picks the partition's database from the *current event*, so a
    table write outside stream iteration fails, and one after a batch of take_events
    would land in the last event's partition."""
    event = _PartitionEvent(partition)
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


class _SharedMemory(RocksDBOptions):
    """Faust's RocksDB options, but every partition's database caches blocks in one
    cache and charges its memtables to it (RocksDB's write buffer manager), as Kafka
    Streams' ``BoundedMemoryRocksDBConfig`` does: the budget holds however many
    partitions and tables a worker opens."""

    def __init__(self, cache: rocksdict.Cache, buffers: Any, **options: Any) -> None:
        super().__init__(**options)
        self.cache, self.buffers = cache, buffers

    def as_options(self) -> Any:
        options = super().as_options()
        # Faust builds its block options inside as_options and rocksdict cannot read them
        # back from ``options``, so its bloom filter and index type are set again here.
        blocks = rocksdict.BlockBasedOptions()
        blocks.set_bloom_filter(self.bloom_filter_size, block_based=True)
        blocks.set_block_cache(self.cache)
        # Index and filter blocks too, or they stay in memory beside it, growing with
        # the data on disk; level 0's stay pinned, as reads go there first.
        blocks.set_cache_index_and_filter_blocks(True)
        blocks.set_pin_l0_filter_and_index_blocks_in_cache(True)
        blocks.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(blocks)
        options.set_write_buffer_manager(self.buffers)
        return options


# One budget per size, for the whole process: a worker's tables share it.
_BUDGETS: dict[int, tuple[rocksdict.Cache, Any]] = {}


def share_table_memory(table: TableT[Any, Any], budget: int, options: Mapping[str, Any]) -> None:
    """Open every partition of ``table`` with ``options``, inside the process's RocksDB
    memory ``budget`` (bytes): one block cache of that size, to which the memtables of
    every partition of every table so bounded are charged, up to half of it.

    Call before the table opens a partition (at build, before the app starts)."""
    shared = _BUDGETS.get(budget)
    if shared is None:
        cache = rocksdict.Cache(budget)
        buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            budget // 2, False, cache
        )
        shared = _BUDGETS[budget] = (cache, buffers)
    cast(Any, table.data).rocksdb_options = _SharedMemory(*shared, **options)


def table_memory_used(budget: int) -> int | None:
    """Bytes the shared RocksDB cache of ``budget`` holds now (blocks and memtables);
    None if no table shares it."""
    shared = _BUDGETS.get(budget)
    return None if shared is None else int(shared[0].get_usage())
