"""The capacity a preview decides with: one ``CapacityView`` that keeps every record (as
``beckon backtest --capacity`` reads its file), from the same source as the events:

    recent()     beside the last N hours of the clickstream: the capacity topic's
                 records from that far back and the history a live worker keeps before
                 it, the newest ``BECKON_CONSOLE_PREVIEW_MAX_CAPACITY`` at most
    uploaded()   beside an uploaded recording: a capacity recording (JSON lines), read by
                 ``streams.backtest.read_capacity``; bad lines are counted and quoted

Both rule sets' drivers read the one view (a forked child of the preview inherits it).
``summary()`` is what the preview's answer says of it. ``recent()`` raises
``BrokerError`` when the topic cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from schemas.instants import format_instant
from streams.backtest import Result, read_capacity
from streams.core.capacity import CapacityView, history_ms
from streams.core.engine import Limits
from streams.kafka.capacity_topic import recent_records
from streams.settings import Settings

MAX_BAD_EXAMPLES: Final = 5  # quoted in the answer, as for the events; all are counted


@dataclass(frozen=True)
class PreviewCapacity:
    """The records a preview decides with, and the bad ones left out."""

    view: CapacityView
    bad_lines: int = 0
    bad_examples: tuple[str, ...] = ()


def uploaded(lines: Iterable[bytes]) -> PreviewCapacity:
    """A capacity recording, read exactly as ``beckon backtest --capacity`` reads it."""
    read = Result()
    view = read_capacity(lines, read)
    examples = tuple(read.bad_capacity_examples[:MAX_BAD_EXAMPLES])
    return PreviewCapacity(view, read.bad_capacity_lines, examples)


def folded(records: Iterable[Any]) -> PreviewCapacity:
    """Capacity-topic records (``key``, ``value``, ``offset``) folded as a worker folds
    them: a record that does not validate, or whose key is not its queue, is left out."""
    view = CapacityView(keep_ms=None)
    bad: list[str] = []
    for record in records:
        reason = view.fold(record.key, record.value)
        if reason is not None and len(bad) < MAX_BAD_EXAMPLES:
            bad.append(f"offset {record.offset}: {reason}")
    return PreviewCapacity(view, view.refused, tuple(bad))


def recent(settings: Settings, since_ms: int, limits: Limits) -> PreviewCapacity:
    """The capacity topic's records that decisions from ``since_ms`` on can see: those
    timestamped up to a live worker's history (``history_ms``: the delay, the max age and
    an hour) before it, the newest ``console_preview_max_capacity`` at most.

    The topic is compacted: records older than its compaction lag may be gone but for
    each queue's latest, and instants they covered then find no capacity (unknown)."""
    start = since_ms - history_ms(limits.capacity_delay_ms, limits.capacity_max_age_ms)
    return folded(recent_records(settings, start, settings.console_preview_max_capacity))


def summary(capacity: PreviewCapacity | None, limits: Limits) -> dict[str, Any]:
    """What the preview's answer says of its capacity (docs/console.md, "Preview")."""
    view = CapacityView() if capacity is None else capacity.view
    oldest = view.oldest()
    return {
        "records": view.fed,
        "queues": len(view.queues()),
        "oldest": None if oldest is None else format_instant(oldest),
        "bad_lines": 0 if capacity is None else capacity.bad_lines,
        "bad_examples": [] if capacity is None else list(capacity.bad_examples),
        "unknown": "allow" if limits.capacity_unknown_allows else "deny",
    }
