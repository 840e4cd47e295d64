"""How far a partition's stream has got in event time, and when a visitor's instant is due.

The engine decides *what* fires and *at which instant*; the backtest fires each instant
in event-time order, between the visitor's own events. Live, a planned instant of a
visitor fires either before the visitor's next event (as in the backtest) or, when no
event comes, by a timer. The timer must never fire an instant before an event of that
visitor which is still to be read, or the two would differ. This module decides when the
timer may fire, from the records of the partition alone.

Two ideas make it safe against bad clocks, restarts and backlogs (docs/event-time.md):

1. **Elapsed, not absolute, time.** A visitor's instant ``T`` planned after its latest
   event at ``L`` is due once the partition's clock has advanced by ``T - L`` (plus the
   grace) *since that event was read*. Each visitor is measured against its own clock,
   so a visitor whose clock runs an hour fast or slow gets its instants at the right
   moment, and saved journeys that are ahead of an unread backlog wait for the backlog.
2. **A clock one visitor cannot drag.** The partition's clock is the lower median of
   the latest event times of the last ``window`` visitors read on it: a few visitors
   far ahead (or behind) do not move it. Once three visitors were read it never runs
   backwards (a clock that does only delays instants: elapsed time shrinks).

Between records, the clock goes on with the wall clock when the stream is live (the
latest record's event time is within ``live_window_ms`` of the wall clock), and, for a
replay of past events, once the partition has been confirmed caught up and idle for
``idle_ms``: a broker outage, which stops reads without confirming anything, does not
move it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

WINDOW: Final = 16  # visitors whose latest event times the clock takes the median of
SETTLED: Final = 3  # visitors read before the clock stops running backwards


@dataclass(slots=True)
class PartitionClock:
    """One partition's event-time clock (epoch ms). Instants and wall times are arguments."""

    live_window_ms: int = 60_000
    idle_ms: int = 5_000
    window: int = WINDOW
    at: int | None = None  # the clock at the latest record, before any extrapolation
    live: bool = False  # the latest record's event time was close to the wall clock
    read_wall: int = 0  # wall time of the latest record
    caught_up_since: int | None = None  # wall time caught up and idle was first confirmed
    # after a restart: the last visitors read before it and their latest event times,
    # oldest first, which the clock resumes from when nothing is left to read
    resume: list[tuple[bytes, int]] = field(default_factory=list)
    _latest: dict[bytes, int] = field(default_factory=dict)  # visitor -> latest ts, by recency

    def saw(self, visitor: bytes, ts: int, wall: int) -> None:
        """A record of ``visitor`` at event time ``ts`` was read at wall time ``wall``."""
        now = self.now(wall)
        latest = self._latest
        known = latest.pop(visitor, None)
        latest[visitor] = ts if known is None else max(known, ts)
        if len(latest) > self.window:
            del latest[next(iter(latest))]
        median = _lower_median(latest.values())
        # From the third visitor on the clock only moves forward; before, the first
        # visitor may be the one far ahead, and the median of two is the earlier one.
        if now is not None and len(latest) >= SETTLED:
            median = max(now, median)
        self.at = median
        self.live = abs(ts - wall) <= self.live_window_ms
        self.read_wall = wall
        self.caught_up_since = None

    def head(self) -> int | None:
        """The newest event time among the window's visitors (an outlier may be it)."""
        return max(self._latest.values(), default=None)

    def now(self, wall: int) -> int | None:
        """The partition's event time at wall time ``wall``; None before its first record."""
        at = self.at
        if at is None:
            return None
        if self.live:
            return at + max(0, wall - self.read_wall)
        since = self.caught_up_since
        if since is not None and wall - since >= self.idle_ms:
            # Read to the end and idle: a replay that ended (or paused: docs/event-time.md,
            # known limits). Nothing unread is left, so the clock takes the newest event
            # time read at once; the median can lag the tail of a replay by hours.
            return max(at, self.head() or at) + (wall - since)
        return at

    def idle(self, wall: int) -> bool:
        """Confirmed read to the end, and idle for ``idle_ms`` since, at ``wall``: what
        comes next is new records (live ones, at the wall clock) or none."""
        since = self.caught_up_since
        return since is not None and wall - since >= self.idle_ms

    def caught_up(self, wall: int) -> None:
        """Kafka confirmed at ``wall`` that every record of the partition has been read."""
        if self.at is None and self.resume:
            # Nothing read since a restart, and nothing to read: the clock as it stood,
            # its window of visitors too (the idle advance starts from their newest).
            self._latest = dict(self.resume)
            self.at = _lower_median(self._latest.values())
        if self.caught_up_since is None:
            # An answer asked for before the latest record was read counts from that read.
            self.caught_up_since = max(wall, self.read_wall)

    def behind(self, wall: int) -> None:
        """Records are waiting, or Kafka could not be asked: no idle advance from now on
        (what it advanced so far stands: the clock never runs backwards)."""
        if self.caught_up_since is not None and not self.live:
            self.at = self.now(wall)
        self.caught_up_since = None

    def restore(self, latest: Sequence[tuple[bytes, int]]) -> None:
        """After a restart: the last ``window`` visitors read before it, oldest first, with
        their latest event times as their saved journeys hold them. If Kafka confirms there
        is nothing to read, the clock resumes as it stood then: their lower median, so a
        visitor whose clock runs hours fast cannot drag it on a restart either (the
        largest saved time did: found by bench/soak, docs/reliability.md), and their
        newest for the idle advance, so the last instants of a replay still fire at once.
        Records set the clock otherwise, so saved journeys ahead of an unread backlog wait
        for it."""
        self.resume = list(latest)

    def ahead(self, ts: int, wall: int, max_ahead_ms: int) -> bool:
        """True if ``ts`` is further ahead of this clock than ``max_ahead_ms`` (counted)."""
        now = self.now(wall)
        return now is not None and ts > now + max_ahead_ms


def _lower_median(values: Iterable[int]) -> int:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def seen_at(clock_now: int, latest: int, head: int) -> int:
    """The clock to time a visitor's instants from, read at ``clock_now`` with its latest
    event at ``latest``, when the newest event time in the clock's window was ``head``:
    never a value behind that event, nor, for a visitor behind the clock, behind the head.

    The median lags the stream where its window holds visitors last seen minutes ago (a
    quiet night, the first records after a takeover), and catches up when newer visitors
    replace them: the clock then moves minutes while the stream moves seconds. Timed
    from the lagging value, a visitor read meanwhile would have that catch-up counted as
    its own elapsed time, and fire before its next event (found by bench/soak,
    docs/reliability.md). Its own latest event time is a floor no catch-up passes. A
    visitor whose clock runs ahead is timed from its own time then: its instants wait
    until the stream reaches them, as they do in the backtest. A visitor whose clock runs
    behind has no such floor of its own, so it takes the newest event time read (an
    outlier there only delays it)."""
    if latest >= clock_now:
        return latest
    return max(clock_now, head)


def due(seen_at: int, latest: int, instant: int, grace_ms: int) -> int:
    """The partition clock at which a visitor's ``instant`` may fire.

    ``latest`` is the visitor's latest event time and ``seen_at`` the partition clock
    when it was read: the instant is ``instant - latest`` after it, plus the grace."""
    return seen_at + (instant - latest) + grace_ms


def visitor_time(seen_at: int, latest: int, clock_now: int, grace_ms: int) -> int:
    """The visitor's own time that the partition clock ``clock_now`` stands for, less the
    grace: the engine may fire the visitor's instants up to it."""
    return latest + (clock_now - seen_at) - grace_ms
