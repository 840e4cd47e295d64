"""Queue capacity in event time: the as-of lookup, and a rule's ``capacity`` clause.

Pure: no Kafka, no clock. The drivers feed capacity records into a :class:`CapacityView`
(the worker as they arrive from ``beckon.capacity``, the backtest from its ``--capacity``
file), and the engine asks it at each decision's instant ``t``:

    the latest record of the rule's queue with measured_at <= t - delay

An as-of join in event time, so the backtest over the recorded capacity stream decides
as live did. That record is *unknown* when there is none, or when it is older than
``max_age`` at ``t``; ``Limits.capacity_unknown_allows`` says whether unknown lets the
rule invite. The clause holds when the record has ``free_slots >= min_free``,
``agents_online >= min_agents`` (when given) and ``expected_wait_s <= max_wait_s`` (when
given; a record that does not estimate the wait is unknown for this test).

Two records of one queue measured at the same millisecond: the later one fed counts
(topic order live, file order in the backtest).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

from schemas.capacity import Capacity, parse_capacity
from schemas.errors import InvalidCapacity
from schemas.instants import format_instant
from schemas.rules import CapacityNeed

# How much history a live view keeps beyond what the newest record needs: decisions up
# to this far behind the newest capacity record of their queue still find theirs.
HISTORY_MARGIN_MS: Final = 3_600_000


class CapacityView:
    """Per queue, the capacity records fed so far, in ``measured_at`` order.

    ``keep_ms`` bounds each queue's history by time: records measured more than
    ``keep_ms`` before the queue's newest are dropped, and the newest is always kept.
    None keeps everything (the backtest, whose input is a file).
    """

    __slots__ = ("_records", "_times", "fed", "keep_ms", "refused")

    def __init__(self, keep_ms: int | None = None) -> None:
        self.keep_ms = keep_ms
        self._times: dict[str, list[int]] = {}
        self._records: dict[str, list[Capacity]] = {}
        self.fed = 0
        self.refused = 0

    def add(self, record: Capacity) -> None:
        """Feed one record (in any order: it is placed by its ``measured_at``). A copy of
        a record already held (a producer's retry, a topic read again) changes nothing."""
        self.fed += 1
        times = self._times.setdefault(record.queue, [])
        records = self._records.setdefault(record.queue, [])
        at = bisect_right(times, record.measured_at)  # after its equals: the later one counts
        same = at
        while same > 0 and times[same - 1] == record.measured_at:
            same -= 1
            if records[same] == record:
                return
        times.insert(at, record.measured_at)
        records.insert(at, record)
        if self.keep_ms is not None:
            cut = bisect_left(times, times[-1] - self.keep_ms)
            if cut:
                del times[:cut], records[:cut]

    def fold(self, key: bytes | None, value: bytes | None) -> str | None:
        """Apply one ``beckon.capacity`` message; None when taken, else why it was refused
        (counted in ``refused``). A tombstone (no value) is taken and changes nothing:
        a queue that stops publishing ages out after the max age."""
        if value is None:
            return None
        try:
            record = parse_capacity(value)
        except InvalidCapacity as exc:
            self.refused += 1
            return str(exc)
        if key != record.queue.encode():
            self.refused += 1
            shown = "none" if key is None else repr(key[:60])
            return f"capacity: the key ({shown}) must be the record's queue {record.queue!r}"
        self.add(record)
        return None

    def as_of(self, queue: str, t: int) -> Capacity | None:
        """The latest record of ``queue`` measured at or before ``t``, or None."""
        times = self._times.get(queue)
        if not times:
            return None
        at = bisect_right(times, t)
        return self._records[queue][at - 1] if at else None

    def queues(self) -> list[str]:
        return sorted(self._times)

    def oldest(self) -> int | None:
        """The earliest ``measured_at`` held, of any queue (None: no record)."""
        return min((times[0] for times in self._times.values() if times), default=None)

    def __len__(self) -> int:
        return sum(map(len, self._times.values()))

    def __repr__(self) -> str:
        return f"CapacityView(queues={len(self._times)}, records={len(self)}, fed={self.fed})"


def history_ms(delay_ms: int, max_age_ms: int) -> int:
    """How far behind its queue's newest record a live view keeps history."""
    return delay_ms + max_age_ms + HISTORY_MARGIN_MS


def capacity_at(
    view: CapacityView | None, queue: str, t: int, delay_ms: int, max_age_ms: int
) -> Capacity | None:
    """The capacity a decision at ``t`` sees for ``queue``: the latest record measured at
    or before ``t - delay_ms``, or None (unknown) when there is none or it is more than
    ``max_age_ms`` old at ``t``."""
    if view is None:
        return None
    record = view.as_of(queue, t - delay_ms)
    if record is None or t - record.measured_at > max_age_ms:
        return None
    return record


def has_capacity(need: CapacityNeed, seen: Capacity | None, *, unknown_allows: bool) -> bool:
    """Whether the clause holds on what the decision sees (None: unknown)."""
    if seen is None:
        return unknown_allows
    if seen.free_slots < need.min_free:
        return False
    if need.min_agents is not None and seen.agents_online < need.min_agents:
        return False
    if need.max_wait_s is not None:
        if seen.expected_wait_s is None:
            return unknown_allows
        return seen.expected_wait_s <= need.max_wait_s
    return True


def facts(seen: Capacity | None) -> dict[str, object] | None:
    """What an invitation's context says about the capacity its rule saw (None: unknown)."""
    if seen is None:
        return None
    return {
        "agents_online": seen.agents_online,
        "free_slots": seen.free_slots,
        "expected_wait_s": seen.expected_wait_s,
        "measured_at": format_instant(seen.measured_at),
    }
