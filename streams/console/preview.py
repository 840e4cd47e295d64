"""The console's preview: a draft and the rules in force, side by side, over the same events.

``run_preview`` is ``beckon backtest`` run twice over one input: the events are run in
event-time order (ties by input order), each parsed once and fed to one
``streams.backtest`` driver per rule set, so each set's figures are exactly what
``beckon backtest`` gives for it. ``read_recent`` reads that input back from the
clickstream topic.

Speed and memory (docs/performance.md, "Console preview"): the work is split by
visitor, not by rule set, as ``beckon backtest --processes`` splits it (``streams.split``).
A first pass with ``orjson`` (a third of a full parse) takes each line's visitor and
time; then, where ``os.fork`` exists, a child process takes half
of the visitors (the lines are inherited, not copied) and this process the other half.
Each sorts its lines by time, then parses them one by one and feeds each event to both
engines: parsed events are never held, only the journeys. A visitor's journey never
looks at another's, so each half is exactly a backtest of its visitors, and the halves'
figures add up. The queues' budgets are shared by every visitor, so they are applied
last, to the added-up figures, from each half's invitations of the queues with a budget
(``streams.console.figures.hold_back``), as ``beckon backtest`` applies them after a
split run. A ``capacity`` view (``streams.console.capacity``) is read by both
engines of both halves, as ``beckon backtest --capacity`` reads its file's.

Errors (under ``schemas.errors.BeckonError``):

    PreviewCancelled    ``cancelled()`` said so; raised within about 20,000 events
    PreviewFailed       the child process died or raised (a ProcessFailed)
    BrokerError         read_recent: the broker or the topic could not be read
"""

from __future__ import annotations

import gc
import heapq
import os
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Final

from schemas.errors import BeckonError, BrokerError, ProcessFailed
from streams.backtest import Result, _Driver, _parse_line
from streams.clock import now_ms
from streams.console.capacity import PreviewCapacity, summary
from streams.console.figures import add, candidates, figures, first, hold_back, rows, samples
from streams.core.capacity import CapacityView
from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.split import index_of, route, run_split

Progress = Callable[[int, int], None]  # (done, total)
Cancelled = Callable[[], bool]

CHECK_EVERY: Final = 20_000  # lines or events between progress reports and cancel checks
MAX_BAD_EXAMPLES: Final = 5  # bad lines quoted in the answer; all are counted
MIN_SPLIT: Final = 10_000  # lines below which one process does it all (a fork costs more)


class PreviewCancelled(BeckonError):
    """The preview was cancelled (``cancelled()`` returned True) before it finished."""


class PreviewFailed(ProcessFailed):
    """A child process of the preview failed; the message says how."""


def run_preview(
    lines: Iterable[bytes],
    draft: CompiledRules,
    in_force: CompiledRules,
    limits: Limits,
    *,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    sample_size: int = 5,
    processes: int = 2,
    capacity: PreviewCapacity | None = None,
) -> dict[str, Any]:
    """Run ``draft`` and ``in_force`` over the JSON lines ``lines`` (events in any order),
    with the queues' ``capacity`` (None: every queue's is unknown).

    Returns the answer of ``POST /api/rules/preview`` (docs/console.md, "Preview").
    ``progress(done, total)`` is called every ``CHECK_EVERY`` lines run in this process's
    share, scaled to ``total``, the number of lines. ``processes=1`` runs everything here.

    The cyclic garbage collector is off during the run, as in ``beckon backtest``:
    events and journeys hold no cycles, and it would only rescan millions of objects.
    """
    started = time.perf_counter()
    steps = _Steps(progress, cancelled)
    collecting = gc.isenabled()
    gc.disable()
    try:
        lines = lines if isinstance(lines, Sequence) else list(lines)
        steps.total = max(len(lines), 1)
        processes = processes if hasattr(os, "fork") and len(lines) >= MIN_SPLIT else 1
        shares = route(lines, processes, check=steps.check, check_every=CHECK_EVERY)
        view = None if capacity is None else capacity.view
        share = partial(
            _share,
            lines,
            draft=draft,
            in_force=in_force,
            limits=limits,
            size=sample_size,
            capacity=view,
        )

        def work(part: int) -> dict[str, Any]:
            return share(shares[part], steps if part == 0 else None)

        parts = run_split(work, processes, name="preview", check=steps.check, failed=PreviewFailed)
        mine, theirs, taken = _added(parts, draft, in_force, sample_size)
        answer = {
            "events": sum(part["events"] for part in parts),
            "visitors": sum(part["visitors"] for part in parts),
            "bad_lines": sum(part["bad_lines"] for part in parts),
            "bad_examples": [
                text for _, text in sorted(e for part in parts for e in part["bad_examples"])
            ][:MAX_BAD_EXAMPLES],
            "seconds": 0.0,
            "draft": {"version": draft.version},
            "in_force": {"version": in_force.version},
            "capacity": summary(capacity, limits),
            "rules": rows(draft, in_force, mine, theirs, taken),
        }
        steps.finish()
        answer["seconds"] = round(time.perf_counter() - started, 2)
        return answer
    finally:
        if collecting:
            gc.enable()


def _added(
    parts: list[dict[str, Any]], draft: CompiledRules, in_force: CompiledRules, size: int
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The parts' figures of each set and the draft's samples, added up, then held back by
    each set's budgets: a budget's rounds need every visitor's invitations."""
    mine = add([part["draft"] for part in parts])
    theirs = add([part["in_force"] for part in parts])
    taken = first([part["samples"] for part in parts], size)
    found = [c for part in parts for c in part["candidates"]["draft"]]
    hold_back(mine, taken, found, draft.budgets)
    found = [c for part in parts for c in part["candidates"]["in_force"]]
    hold_back(theirs, {}, found, in_force.budgets)
    return mine, theirs, taken


class _Steps:
    """Progress and cancellation, in steps: each line parsed is one, and the engine phase
    counts as many again, whatever the number of valid events and of processes."""

    def __init__(self, progress: Progress | None, cancelled: Cancelled | None) -> None:
        self.progress, self.cancelled = progress, cancelled
        self.total = 0

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise PreviewCancelled("the preview was cancelled")

    def at(self, done: int) -> None:
        self.check()
        if self.progress is not None:
            self.progress(min(done, self.total - 1), self.total)

    def share(self, start: int, steps: int, count: int) -> Callable[[int], None]:
        """A report for ``count`` items that cover ``steps`` steps from ``start``."""
        scale = steps / max(count, 1)
        return lambda done: self.at(start + int(done * scale))

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)


def _share(
    lines: Sequence[bytes],
    keys: list[int],
    steps: _Steps | None,
    *,
    draft: CompiledRules,
    in_force: CompiledRules,
    limits: Limits,
    size: int,
    capacity: CapacityView | None,
) -> dict[str, Any]:
    """Both sets over the lines of ``keys``, in time order (ties: line order), each line
    parsed once, fed to both engines, and let go (only the journeys stay in memory)."""
    keys.sort()
    parsed, events = Result(), 0
    bad: list[int] = []  # line numbers
    visitors: set[str] = set()
    ours = _Driver(draft, limits, Result(), capacity)
    theirs = _Driver(in_force, limits, Result(), capacity)
    feed_ours, feed_theirs, seen = ours.feed, theirs.feed, visitors.add
    report = None if steps is None else steps.share(0, steps.total, len(keys))
    for start in range(0, len(keys), CHECK_EVERY):
        if report is not None:
            report(start)
        for packed in keys[start : start + CHECK_EVERY]:
            index = index_of(packed)
            event = _parse_line(index + 1, lines[index], parsed)
            if event is None:
                if parsed.bad_lines > len(bad):  # a bad line, not a blank one
                    bad.append(index + 1)
            else:
                feed_ours(event)
                feed_theirs(event)
                seen(event.visitor_id)
                events += 1
    mine, others = ours.finish(events), theirs.finish(events)
    # Its first bad lines by line number, whatever the order it met them in.
    firsts = heapq.nsmallest(MAX_BAD_EXAMPLES, bad)
    quoted = Result()
    for number in firsts:
        _parse_line(number, lines[number - 1], quoted)
    return {
        "events": events,
        "visitors": len(visitors),
        "bad_lines": parsed.bad_lines,
        "bad_examples": [list(pair) for pair in zip(firsts, quoted.bad_examples, strict=True)],
        "draft": figures(mine),
        "in_force": figures(others),
        "samples": samples(mine, draft, size),
        "candidates": {
            "draft": candidates(mine, draft.budgets),
            "in_force": candidates(others, in_force.budgets),
        },
    }


def read_recent(
    settings: Settings,
    hours: float,
    max_events: int,
    *,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    now: int | None = None,
    idle_timeout_s: float = 10.0,
) -> list[bytes]:
    """The raw values of ``settings.topic_clickstream`` recorded since ``now`` − ``hours``
    (``now`` defaults to the wall clock), up to the end offsets at call time.

    Every partition is read from ``offsets_for_times`` at that instant. When the span
    holds more than ``max_events`` offsets, each partition gives its newest records, in
    proportion to its share of the span, so the answer is the newest ``max_events`` and
    no partition's traffic is cut short of the others'. Offsets also count transaction
    markers and tombstones (skipped), so the answer can hold a little fewer. Records
    come partition by partition: ``run_preview`` orders them by event time.

    ``progress(done, total)`` counts offsets read of those planned. ``BrokerError`` when
    the broker cannot be reached, the topic does not exist, or no record comes for
    ``idle_timeout_s`` while some are still due.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    topic = settings.topic_clickstream
    since = (now_ms() if now is None else now) - round(hours * 3_600_000)
    steps = _Steps(progress, cancelled)
    try:
        consumer = KafkaConsumer(
            **settings.kafka_python_config(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="beckon-console-preview",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    try:
        tps = [TopicPartition(topic, p) for p in sorted(_partitions(consumer, topic))]
        ends = consumer.end_offsets(tps)
        found = consumer.offsets_for_times(dict.fromkeys(tps, max(since, 0)))
        starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        starts = _newest(starts, ends, max_events)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        steps.total = max(sum(ends[tp] - starts[tp] for tp in tps), 1)
        return _read_until(consumer, starts, ends, steps, idle_timeout_s)
    except KafkaError as exc:
        raise BrokerError(f"reading the topic {topic!r} failed: {exc}") from exc
    finally:
        consumer.close()


def _partitions(consumer: Any, topic: str) -> set[int]:
    deadline = time.monotonic() + 10
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise BrokerError(
                f"the topic {topic!r} (BECKON_TOPIC_CLICKSTREAM) does not exist; "
                "`beckon topics create` creates it"
            )
        time.sleep(0.2)
    return set(partitions)


def _newest(starts: dict[Any, int], ends: dict[Any, int], most: int) -> dict[Any, int]:
    """Later starts when the span is over ``most`` offsets: each partition keeps its
    newest, in proportion to its share (rounded down, so never more than ``most``)."""
    span = sum(ends[tp] - starts[tp] for tp in starts)
    if span <= most:
        return starts
    return {tp: ends[tp] - (ends[tp] - start) * most // span for tp, start in starts.items()}


def _read_until(
    consumer: Any,
    starts: dict[Any, int],
    ends: dict[Any, int],
    steps: _Steps,
    idle_timeout_s: float,
) -> list[bytes]:
    """Poll until every partition's position reaches its end offset (read_committed:
    positions pass transaction markers, so positions are compared, not records)."""
    out: list[bytes] = []
    pending = {tp for tp in starts if starts[tp] < ends[tp]}
    consumer.pause(*(set(starts) - pending))
    last = time.monotonic()
    while pending:
        steps.at(sum(consumer.position(tp) - starts[tp] for tp in starts))
        batches = consumer.poll(timeout_ms=200, max_records=50_000)
        if batches:
            last = time.monotonic()
        elif time.monotonic() - last > idle_timeout_s:
            raise BrokerError(
                f"no record came from {sorted(tp.partition for tp in pending)} of the "
                f"topic for {idle_timeout_s:g} s, though their end offsets are further on"
            )
        for tp, records in batches.items():
            end = ends[tp]
            # Records appended after the call are left out; tombstones carry no event.
            out += [r.value for r in records if r.offset < end and r.value is not None]
        done = {tp for tp in pending if consumer.position(tp) >= ends[tp]}
        if done:
            consumer.pause(*done)
            pending -= done
    steps.finish()
    return out
