"""``faust_adapter.restore_from_fetch``: the changelog records of a fetch, applied as
Faust's recovery loop would apply them one by one, against stand-ins of its books; the
record that ends a partition's recovery goes to the loop itself."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker.faust_adapter import restore_from_fetch

ACTIVE, STANDBY, OTHER = TP("journeys-changelog", 0), TP("journeys-changelog", 1), TP("clicks", 0)


class Table:
    def __init__(self) -> None:
        self.applied: list[tuple[TP, int, bytes, bytes | None]] = []

    def apply_changelog_batch(self, events: list[Any]) -> None:
        self.applied += [(e.message.tp, e.message.offset, e.message.key, e.message.value)
                         for e in events]  # fmt: skip


class Recovery:
    def __init__(self, table: Table, highwater: int) -> None:
        self.tp_to_table = {ACTIVE: table, STANDBY: table}
        self.active_tps, self.standby_tps = {ACTIVE}, {STANDBY}
        self.active_offsets: Counter[TP] = Counter({ACTIVE: 1})  # 0 and 1 restored already
        self.standby_offsets: Counter[TP] = Counter({STANDBY: 1})
        self.active_highwaters = {ACTIVE: highwater}  # Faust's: the last offset
        self._active_events_received_at: dict[TP, float] = {}
        self._standby_events_received_at: dict[TP, float] = {}
        self.flushed = 0

    def standby_remaining_total(self) -> int:
        return 1  # standbys never end

    def flush_buffers(self) -> None:
        self.flushed += 1


def records(tp: TP, *offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=o, key=b"v%d" % o, value=None if o == 4 else b"j%d" % o)
            for o in offsets]  # fmt: skip


def consumer(recovery: Recovery, *, flow: bool = True) -> Any:
    tables = SimpleNamespace(recovery=recovery, standbys_ready=True, changelog_queue=Queue())
    return SimpleNamespace(flow_active=flow, app=SimpleNamespace(tables=tables))


class Queue:
    def __init__(self) -> None:
        self.put_events: list[Any] = []

    async def put(self, event: Any) -> None:
        self.put_events.append(event)


def restore(stand_in: Any, fetch: dict[TP, Any], active: Any, handed: dict[TP, int]) -> None:
    asyncio.run(restore_from_fetch(stand_in, fetch, active, handed))


def test_records_past_what_recovery_saw_are_applied_and_taken_from_the_fetch() -> None:
    table = Table()
    recovery = Recovery(table, highwater=9)
    fetch = {ACTIVE: records(ACTIVE, 1, 2, 3, 4), STANDBY: records(STANDBY, 0, 1, 2),
             OTHER: records(OTHER, 7)}  # fmt: skip
    stand_in, handed = consumer(recovery), {}
    restore(stand_in, fetch, None, handed)
    assert table.applied == [(ACTIVE, 2, b"v2", b"j2"), (ACTIVE, 3, b"v3", b"j3"),
                             (ACTIVE, 4, b"v4", None), (STANDBY, 2, b"v2", b"j2")]  # fmt: skip
    assert recovery.active_offsets[ACTIVE] == 4 and recovery.standby_offsets[STANDBY] == 2
    assert list(fetch) == [OTHER]  # the intake's, or Faust's
    assert stand_in.app.tables.changelog_queue.put_events == [] and handed == {}


def test_the_record_that_ends_a_recovery_goes_to_fausts_loop_and_the_rest_waits_behind_it() -> None:
    # Faust's loop ends the recovery once it has applied the last record; ended from
    # here, the loop could clear its end signal before the recovery saw it, for good.
    table = Table()
    recovery = Recovery(table, highwater=3)
    stand_in, handed = consumer(recovery), {}
    restore(stand_in, {ACTIVE: records(ACTIVE, 2, 3)}, None, handed)
    assert table.applied == [(ACTIVE, 2, b"v2", b"j2")] and recovery.active_offsets[ACTIVE] == 2
    [final] = stand_in.app.tables.changelog_queue.put_events
    assert (final.message.tp, final.message.offset, final.message.value) == (ACTIVE, 3, b"j3")
    assert handed == {ACTIVE: 3} and recovery.flushed == 1
    later = {ACTIVE: records(ACTIVE, 5)}
    restore(stand_in, later, None, handed)  # its loop has not taken offset 3 yet
    assert ACTIVE in later and table.applied == [(ACTIVE, 2, b"v2", b"j2")]
    recovery.active_offsets[ACTIVE] = 3  # now it has
    restore(stand_in, later, None, handed)
    assert ACTIVE not in later and handed == {ACTIVE: 5}  # past the highwater: its loop's
    assert len(stand_in.app.tables.changelog_queue.put_events) == 2


def test_what_faust_would_not_deliver_is_left_to_it() -> None:
    table = Table()
    recovery = Recovery(table, highwater=9)
    stopped = {ACTIVE: records(ACTIVE, 2)}
    restore(consumer(recovery, flow=False), stopped, None, {})  # a rebalance began
    paused = {ACTIVE: records(ACTIVE, 2)}
    restore(consumer(recovery), paused, {STANDBY}, {})  # not active since the fetch began
    assert table.applied == [] and ACTIVE in stopped and ACTIVE in paused
    assert recovery.active_offsets[ACTIVE] == 1
