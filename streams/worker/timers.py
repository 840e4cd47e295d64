"""The worker's timers: per partition, an event-time clock and the planned instants due on it.

A visitor's planned instant is kept as the value its partition's clock must reach
(``streams.core.clock.due``): the time since the visitor's latest event was read,
measured on the partition's clock, not the visitor's own. docs/event-time.md has the
reasoning; ``streams.core.clock`` the clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from streams.core.clock import WINDOW, PartitionClock, due, seen_at, visitor_time
from streams.worker.held import Held


@dataclass
class Timers:
    grace_ms: int
    live_window_ms: int
    idle_ms: int
    max_ahead_ms: int
    clocks: dict[int, PartitionClock] = field(default_factory=dict)
    heaps: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    scheduled: dict[bytes, int] = field(default_factory=dict)  # visitor -> clock value due
    # visitor -> its planned instant (its own time), and per partition a heap of them:
    # the earliest a budget candidate of the partition's planned instants can be
    instants: dict[bytes, int] = field(default_factory=dict)
    planned: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    read_to: dict[int, int] = field(default_factory=dict)  # partition -> next offset to handle
    # while resuming: partition -> (offset, visitor, latest event time) of the last read
    resuming: dict[int, list[tuple[int, bytes, int]]] = field(default_factory=dict)

    def clock(self, partition: int) -> PartitionClock:
        clock = self.clocks.get(partition)
        if clock is None:
            clock = self.clocks[partition] = PartitionClock(self.live_window_ms, self.idle_ms)
        return clock

    def handled(self, partition: int, offset: int) -> None:
        """A record of ``partition`` was handled (an event, or a dead letter)."""
        self.read_to[partition] = offset + 1

    def saw(self, partition: int, vkey: bytes, ts: int, wall: int) -> bool:
        """An event was read; True if its event time was far ahead of its partition."""
        clock = self.clock(partition)
        ahead = clock.ahead(ts, wall, self.max_ahead_ms)
        clock.saw(vkey, ts, wall)
        return ahead

    def now(self, partition: int, wall: int) -> int | None:
        clock = self.clocks.get(partition)
        return None if clock is None else clock.now(wall)

    def seen_at(self, partition: int, wall: int, latest: int) -> int | None:
        """What a visitor whose latest event (at ``latest``) was just read is timed from."""
        clock = self.clocks.get(partition)
        now = None if clock is None else clock.now(wall)
        if clock is None or now is None:
            return None
        return seen_at(now, latest, clock.head() or now)

    def schedule(self, vkey: bytes, partition: int, held: Held, instant: int | None) -> None:
        """Plan ``instant`` of the visitor (None: nothing planned)."""
        if instant is None:
            self.scheduled.pop(vkey, None)
            self.instants.pop(vkey, None)
            return
        at = due(held.anchor, held.journey.clock, instant, self.grace_ms)
        if self.scheduled.get(vkey) != at:
            self.scheduled[vkey] = at
            heapq.heappush(self.heaps.setdefault(partition, []), (at, vkey))
        if self.instants.get(vkey) != instant:
            self.instants[vkey] = instant
            planned = self.planned.setdefault(partition, [])
            heapq.heappush(planned, (instant, vkey))
            if len(planned) > 2 * len(self.instants) + 1024:
                self._compact()

    def _compact(self) -> None:
        """Drop the planned entries of instants fired or planned anew: ``earliest`` only
        drops them from the top, and is asked only while some queue has a budget."""
        for partition, heap in self.planned.items():
            live = {(t, v) for t, v in heap if self.instants.get(v) == t}
            self.planned[partition] = sorted(live)

    def forget(self, vkey: bytes) -> None:
        """The visitor's journey is gone: nothing of it is planned any more."""
        self.scheduled.pop(vkey, None)
        self.instants.pop(vkey, None)

    def earliest(self, partition: int) -> int | None:
        """The earliest instant (visitors' own time) planned on ``partition``, if any."""
        heap, instants = self.planned.get(partition), self.instants
        while heap and instants.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # fired or planned anew since
        return heap[0][0] if heap else None

    def due(self, wall: int) -> Iterator[tuple[int, bytes, int]]:
        """(partition, visitor, partition clock) of every planned instant due now."""
        for partition, heap in self.heaps.items():
            now = self.now(partition, wall)
            if now is None:
                continue
            while heap and heap[0][0] <= now:
                at, vkey = heapq.heappop(heap)
                if self.scheduled.get(vkey) == at:  # else superseded by a later plan
                    del self.scheduled[vkey]
                    self.instants.pop(vkey, None)
                    yield partition, vkey, now

    def limit(self, held: Held, clock_now: int) -> int:
        """The visitor's own time up to which its instants may fire."""
        return visitor_time(held.anchor, held.journey.clock, clock_now, self.grace_ms)

    def reset(self) -> None:
        """After a rebalance or a recovery: clocks start again from the records read."""
        self.clocks.clear()
        self.heaps.clear()
        self.scheduled.clear()
        self.instants.clear()
        self.planned.clear()
        self.read_to.clear()
        self.resuming.clear()

    def resume(self, partition: int, vkey: bytes, held: Held) -> None:
        """A saved journey of ``partition``: the last ones read before a restart give what
        the partition's clock resumes from (``resumed``) if Kafka says nothing is left."""
        if held.read_to is None or held.read_to[0] != partition:
            return  # not read live on this partition: says nothing about its clock
        last = self.resuming.setdefault(partition, [])
        entry = (held.read_to[1], vkey, held.journey.clock)
        if len(last) < WINDOW:
            heapq.heappush(last, entry)
        else:
            heapq.heappushpop(last, entry)

    def resumed(self) -> None:
        """Every saved journey was seen: restore each partition's clock from its window."""
        for partition, last in self.resuming.items():
            self.clock(partition).restore([(vkey, ts) for _, vkey, ts in sorted(last)])
        self.resuming.clear()

    def confirm(
        self, positions: Mapping[int, int | None], highwaters: Mapping[int, int], wall: int
    ) -> None:
        """Kafka's end offsets, asked at ``wall``: caught up where every record was handled.

        ``positions`` are the committed offsets: past transaction markers, which hold
        offsets but no record to handle."""
        for partition, end in highwaters.items():
            position = max(self.read_to.get(partition, 0), positions.get(partition) or 0)
            if position >= end:
                self.clock(partition).caught_up(wall)
            else:
                self.clock(partition).behind(wall)

    def unconfirmed(self, partitions: Iterable[int], wall: int) -> None:
        """Kafka could not be asked: nothing is known to be caught up."""
        for partition in partitions:
            self.clock(partition).behind(wall)
