"""When a rule's timeframe is open: ``Window.is_open(t)`` and ``Window.next_open(t)``.

Owns the meaning of a ``Timeframe`` at an instant (epoch milliseconds, UTC):

- The window is a set of local wall-clock times in the zone: allowed local days (the
  inclusive ``start_date``..``end_date`` and ``days``), and on each such day the ``hours``
  (start inclusive, end exclusive, all day without). ``22:00-02:00`` belongs to the day it
  starts on: Friday 22:00 to Saturday 02:00 counts for ``days: [fri]`` and Friday's date.
- An instant is open when its local wall-clock time is in that set. So an opening time in
  a spring-forward gap opens at the first instant after the gap, an ambiguous one
  (fall-back) opens at its first occurrence, and a wall-clock time that comes twice is
  open both times.
- ``next_open`` looks at most ``HORIZON_DAYS`` ahead and gives None past that.

Local time is computed with integer arithmetic on "wall milliseconds" (UTC ms plus the
zone's offset), so the hot path does no datetime work: each Window remembers the span of
UTC instants over which its zone's offset is constant (a memo of a pure function, it never
changes a result) and the zone's offset transitions are found once per zone and year.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from schemas.rules import DAYS, Timeframe

__all__ = ["HORIZON_DAYS", "Window"]

HORIZON_DAYS: Final = 400
_MINUTE: Final = 60_000
_DAY: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_FAR: Final = 10**9  # days; stands for "no start_date" / "no end_date"
_ALL_DAYS: Final = 0b1111111
# (first ms, end ms, offset ms): empty, so the first call computes the real span.
_NO_SPAN: Final = (0, 0, 0)


@dataclass(frozen=True, slots=True, repr=False)
class Window:
    """A compiled timeframe: build with ``Window.of``; ``zone`` None means always open."""

    zone: ZoneInfo | None
    first_day: int  # local days since 1970-01-01
    last_day: int
    weekday_mask: int  # bit n set: date.weekday() == n allowed
    start_ms: int  # hours as ms of the local day; start > end spans midnight
    end_ms: int
    # One-element list so a frozen Window can remember its current offset span.
    _span: list[tuple[int, int, int]] = field(
        default_factory=lambda: [_NO_SPAN], init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, tf: Timeframe | None) -> Window:
        """Compile a rule's timeframe once; ``None`` gives a window that is always open."""
        unlimited = tf is None or all(
            limit is None for limit in (tf.hours, tf.days, tf.start_date, tf.end_date)
        )
        if tf is None or unlimited:  # e.g. a timeframe that only names a zone, for per_day
            return cls(None, -_FAR, _FAR, _ALL_DAYS, 0, _DAY)
        start, end = tf.hours if tf.hours is not None else (0, 1440)
        return cls(
            zone=tf.zone,
            first_day=_day_number(tf.start_date) if tf.start_date else -_FAR,
            last_day=_day_number(tf.end_date) if tf.end_date else _FAR,
            weekday_mask=sum(1 << d for d in tf.weekdays),
            start_ms=start * _MINUTE,
            end_ms=end * _MINUTE,
        )

    def __repr__(self) -> str:
        if self.zone is None:
            return "Window(always)"
        dates = ""
        if self.first_day > -_FAR or self.last_day < _FAR:
            first = _date_text(self.first_day) if self.first_day > -_FAR else ""
            last = _date_text(self.last_day) if self.last_day < _FAR else ""
            dates = f", {first}..{last}"
        days = [name for n, name in enumerate(DAYS) if self.weekday_mask >> n & 1]
        hours = "-".join(
            f"{ms // 3_600_000:02d}:{ms // _MINUTE % 60:02d}" for ms in (self.start_ms, self.end_ms)
        )
        return f"Window({self.zone.key!r}{dates}, {','.join(days)}, {hours})"

    @property
    def always(self) -> bool:
        """Whether this window is open at every instant."""
        return self.zone is None

    def is_open(self, t_ms: int) -> bool:
        """Whether the window is open at the instant ``t_ms`` (epoch ms)."""
        if self.zone is None:
            return True
        lo, hi, offset = self._span[0]
        if not lo <= t_ms < hi:
            lo, hi, offset = self._offset_span(t_ms)
        return self._open_at_wall(t_ms + offset)

    def next_open(self, t_ms: int) -> int | None:
        """The earliest instant ≥ ``t_ms`` at which the window is open, or None.

        None when it never opens again (past ``end_date``) or not within ``HORIZON_DAYS``.
        """
        if self.is_open(t_ms):
            return t_ms
        horizon = t_ms + HORIZON_DAYS * _DAY
        cur = t_ms
        # Walk spans of constant offset: within one, wall time is UTC plus a constant,
        # so the next opening is plain arithmetic; at a span's end the wall clock jumps
        # (a DST gap or overlap), which the next iteration looks at afresh.
        while cur <= horizon:
            lo, hi, offset = self._span[0]
            if not lo <= cur < hi:
                lo, hi, offset = self._offset_span(cur)
            wall = cur + offset
            if self._open_at_wall(wall):
                return cur
            opening = self._next_opening_wall(wall)
            if opening is None:
                return None
            candidate = opening - offset
            if candidate < hi:
                return candidate if candidate <= horizon else None
            cur = hi
        return None

    def _open_at_wall(self, wall: int) -> bool:
        day, ms = divmod(wall, _DAY)
        start, end = self.start_ms, self.end_ms
        if start < end:
            if not start <= ms < end:
                return False
        elif ms < start:
            if ms >= end:
                return False
            day -= 1  # before the end of an overnight window: it belongs to the day before
        # 1970-01-01 was a Thursday (weekday 3).
        weekday = (day + 3) % 7
        return self.first_day <= day <= self.last_day and (self.weekday_mask >> weekday) & 1 == 1

    def _next_opening_wall(self, wall: int) -> int | None:
        """The first wall time > ``wall`` at which a day's hours start; None past last_day."""
        day, ms = divmod(wall, _DAY)
        if ms >= self.start_ms:
            day += 1
        day = max(day, self.first_day)
        for _ in range(7):
            if day > self.last_day:
                return None
            if (self.weekday_mask >> ((day + 3) % 7)) & 1:
                return day * _DAY + self.start_ms
            day += 1
        return None  # unreachable: a timeframe allows at least one weekday

    def _offset_span(self, t_ms: int) -> tuple[int, int, int]:
        """(lo, hi, offset): the zone's UTC offset is ``offset`` ms for every t in [lo, hi)."""
        assert self.zone is not None
        span = _offset_span(self.zone, t_ms // 1000)
        self._span[0] = span
        return span


def _day_number(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def _date_text(day: int) -> str:
    return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()


def _offset_span(zone: ZoneInfo, t_s: int) -> tuple[int, int, int]:
    year = datetime.fromtimestamp(t_s, UTC).year
    offset = datetime.fromtimestamp(t_s, zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    this_year = _transitions(zone, year)
    later = (*this_year, *_transitions(zone, year + 1))
    i = bisect.bisect_right(later, t_s)
    hi = later[i] if i < len(later) else _year_start(year + 2)
    j = bisect.bisect_right(this_year, t_s)
    lo = this_year[j - 1] if j > 0 else _year_start(year)
    return lo * 1000, hi * 1000, int(offset.total_seconds()) * 1000


def _year_start(year: int) -> int:
    return (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86_400


@functools.lru_cache(maxsize=512)
def _transitions(zone: ZoneInfo, year: int) -> tuple[int, ...]:
    """Epoch seconds T in (start of ``year``, start of the next] where the offset changes.

    The offset at T is the new one. zoneinfo does not expose its transition table, so
    probe the offset once a day and bisect each change to the second; no zone changes
    its offset twice within a day.
    """

    def offset(s: int) -> object:
        return datetime.fromtimestamp(s, zone).utcoffset()

    found = []
    prev_s = _year_start(year)
    prev = offset(prev_s)
    stop = _year_start(year + 1)
    while prev_s < stop:
        s = min(prev_s + 86_400, stop)
        now = offset(s)
        if now != prev:
            lo, hi = prev_s, s  # offset(lo) == prev, offset(hi) != prev
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == prev:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        prev_s, prev = s, now
    return tuple(found)
