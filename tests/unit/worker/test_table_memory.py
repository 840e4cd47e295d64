"""The worker's tables keep their RocksDB memory inside one budget, however many
partitions they open: real RocksDB databases, written well past the budget."""

from __future__ import annotations

import os
import time
from pathlib import Path

import faust

from streams.worker.faust_adapter import partition_db, share_table_memory, table_memory_used

MB = 1024 * 1024


def test_every_partition_of_every_table_shares_one_bounded_budget(tmp_path: Path) -> None:
    budget = 8 * MB
    app = faust.App("memory-test", broker="kafka://localhost:1", datadir=str(tmp_path),
                    store="rocksdb://")  # fmt: skip
    options = {"write_buffer_size": 4 * MB, "max_write_buffer_number": 2}
    tables = [app.Table(name, partitions=4, key_type=bytes, value_type=bytes, options=options)
              for name in ("journeys", "dwell")]  # fmt: skip
    for table in tables:
        share_table_memory(table, budget, options)
    dbs = [partition_db(table, p) for table in tables for p in range(4)]
    value = os.urandom(1024)
    for i in range(6_000):  # 6 MB into each of 8 partitions: 48 MB written, 6x the budget
        for db in dbs:
            db.put(i.to_bytes(4, "big"), value)
    # Each partition alone would have held up to 2 x 4 MB of memtables: 64 MB in all.
    # RocksDB flushes in the background while writes go on: measure once it is done.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        db.property_int_value("rocksdb.num-running-flushes")
        or db.property_int_value("rocksdb.mem-table-flush-pending")
        for db in dbs
    ):
        time.sleep(0.01)
    memtables = sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs)
    assert memtables <= budget * 1.25
    used = table_memory_used(budget)
    assert used is not None and used >= memtables / 2  # the memtables are charged to it
    assert all(db.get((5_999).to_bytes(4, "big")) == value for db in dbs)  # nothing lost


def test_without_a_table_the_budget_holds_nothing() -> None:
    assert table_memory_used(3 * MB + 1) is None
