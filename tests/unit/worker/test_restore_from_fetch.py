"""``faust_adapter.restore_from_fetch``: the changelog records of a fetch, applied as
Faust's recovery loop would apply them one by one, against stand-ins of its books."""

from __future__ import annotations

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
        self.active_highwaters = {ACTIVE: highwater}
        self._active_events_received_at: dict[TP, float] = {}
        self._standby_events_received_at: dict[TP, float] = {}
        self.in_recovery, self.flushed = True, 0
        self.signal_recovery_end = SimpleNamespace(set=self.end)
        self.ended = False

    def need_recovery(self) -> bool:
        return self.active_offsets[ACTIVE] < self.active_highwaters[ACTIVE]

    def standby_remaining_total(self) -> int:
        return 1  # standbys never end

    def flush_buffers(self) -> None:
        self.flushed += 1

    def _set_recovery_ended(self) -> None:
        self.in_recovery = False

    def end(self) -> None:
        self.ended = True


def records(tp: TP, *offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=o, key=b"v%d" % o, value=None if o == 4 else b"j%d" % o)
            for o in offsets]  # fmt: skip


def consumer(recovery: Recovery, *, flow: bool = True) -> Any:
    tables = SimpleNamespace(recovery=recovery, standbys_ready=True)
    return SimpleNamespace(flow_active=flow, app=SimpleNamespace(tables=tables))


def test_records_past_what_recovery_saw_are_applied_and_taken_from_the_fetch() -> None:
    table = Table()
    recovery = Recovery(table, highwater=9)
    fetch = {ACTIVE: records(ACTIVE, 1, 2, 3, 4), STANDBY: records(STANDBY, 0, 1, 2),
             OTHER: records(OTHER, 7)}  # fmt: skip
    restore_from_fetch(consumer(recovery), fetch, None)
    assert table.applied == [(ACTIVE, 2, b"v2", b"j2"), (ACTIVE, 3, b"v3", b"j3"),
                             (ACTIVE, 4, b"v4", None), (STANDBY, 2, b"v2", b"j2")]  # fmt: skip
    assert recovery.active_offsets[ACTIVE] == 4 and recovery.standby_offsets[STANDBY] == 2
    assert list(fetch) == [OTHER]  # the intake's, or Faust's
    assert recovery.in_recovery and not recovery.ended  # 5..9 still to read


def test_recovery_ends_with_the_batch_that_reaches_the_highwater() -> None:
    table = Table()
    recovery = Recovery(table, highwater=3)
    restore_from_fetch(consumer(recovery), {ACTIVE: records(ACTIVE, 2, 3)}, None)
    assert not recovery.in_recovery and recovery.ended and recovery.flushed == 1


def test_what_faust_would_not_deliver_is_left_to_it() -> None:
    table = Table()
    recovery = Recovery(table, highwater=9)
    stopped = {ACTIVE: records(ACTIVE, 2)}
    restore_from_fetch(consumer(recovery, flow=False), stopped, None)  # a rebalance began
    paused = {ACTIVE: records(ACTIVE, 2)}
    restore_from_fetch(consumer(recovery), paused, {STANDBY})  # not active since the fetch
    assert table.applied == [] and ACTIVE in stopped and ACTIVE in paused
    assert recovery.active_offsets[ACTIVE] == 1
