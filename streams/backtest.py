"""``beckon backtest``: the engine over recorded events, offline.

Reads a JSON-lines file of ClickEvents in any order, orders them by event time (ties by
file order), drives ``streams.core.engine`` exactly as the live worker does, fires whatever
is still pending at the end, and returns the invitations and decisions in the order of
their instants. Lines that are not valid events are counted and kept as examples,
never fatal.

With ``--capacity`` it also reads a JSON-lines file of capacity records (as published on
``beckon.capacity``) into one ``CapacityView`` with the whole history, so every decision
finds the record it found live: the latest measured ``capacity_delay`` before its
instant (``streams.core.capacity``). Bad capacity lines are counted and quoted too.

With ``processes`` > 1 (``beckon backtest --processes``) the run is split by visitor
(``streams.split``) in two rounds of forked children. First one child per span of the
file reads its lines' visitors and times with ``orjson`` (``route_span``) while this
process loads device-detector with the file's first user agents (``_first_agents``).
Then each process (this one and children forked now, which inherit device-detector's
compiled patterns) sorts its visitors' lines by time, parses them one at a time from
the file, mapped into memory and shared by all, and feeds its own driver; the results
are added up and sorted as one run sorts them. Memory: the file's pages (shared, the
page cache's), 8 bytes a line for where it starts, and about 44 bytes a line for the
sort keys (44 MB for 1M lines), besides the journeys; parsed events are never held. The
output is the same as one process's: a visitor's journey never looks at another's, and
journeys past the horizon are forgotten on days of event time (``_Driver._forget``),
not on counts of events fed.
"""

from __future__ import annotations

import gc
import heapq
import mmap
import os
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import IO, Any

from schemas.capacity import parse_capacity
from schemas.errors import InvalidCapacity, InvalidEvent
from schemas.events import ClickEvent, parse_event
from streams.core.budget import over_budget, refused
from streams.core.capacity import CapacityView
from streams.core.engine import END, Limits, Step, advance, horizon, tick
from streams.core.journey import Journey
from streams.core.profile import device_of
from streams.core.rules import CompiledRules
from streams.split import index_of, route_span, run_split, spans

MAX_EXAMPLES = 10  # bad lines quoted in the report; all are counted
SWEEP_MS = 86_400_000  # journeys gone past the horizon are forgotten as each UTC day begins
SPLIT_BYTES = 4_000_000  # a smaller file runs in one process by default (~10,000 events)
WARM_BYTES = 1_000_000  # a split run loads device-detector with the agents of this much…
WARM_AGENTS = 16  # …at most this many of them


@dataclass
class Result:
    invitations: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)
    visitors: int = 0
    capacity_records: int = 0
    bad_capacity_lines: int = 0
    bad_capacity_examples: list[str] = field(default_factory=list)


def read_events(lines: Iterable[bytes], result: Result) -> list[tuple[int, int, ClickEvent]]:
    """Parse every line; return (ts, line number, event) for the valid ones."""
    events = []
    for number, line in enumerate(lines, 1):
        event = _parse_line(number, line, result)
        if event is not None:
            events.append((event.ts, number, event))
    return events


def _parse_line(number: int, line: bytes, result: Result) -> ClickEvent | None:
    """The event on this line, or None (blank, or bad: counted, and quoted if among the first)."""
    try:
        return parse_event(line)
    except InvalidEvent as exc:
        if not line.strip():  # no JSON at all: blank, not bad (checked only on failure)
            return None
        result.bad_lines += 1
        if len(result.bad_examples) < MAX_EXAMPLES:
            result.bad_examples.append(f"line {number}: {exc}")
        return None


def read_capacity(lines: Iterable[bytes], result: Result) -> CapacityView:
    """Every valid capacity record of the lines, in one view that keeps them all (a bad
    line is counted, and quoted if among the first ``MAX_EXAMPLES``)."""
    view = CapacityView(keep_ms=None)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            view.add(parse_capacity(line))
        except InvalidCapacity as exc:
            result.bad_capacity_lines += 1
            if len(result.bad_capacity_examples) < MAX_EXAMPLES:
                result.bad_capacity_examples.append(f"line {number}: {exc}")
            continue
        result.capacity_records += 1
    return view


class _Driver:
    """Feeds events, in time order, to the engine, one journey per visitor."""

    def __init__(
        self,
        rules: CompiledRules,
        limits: Limits,
        result: Result,
        capacity: CapacityView | None = None,
    ) -> None:
        self.rules, self.limits, self.result = rules, limits, result
        self.capacity = capacity
        self.journeys: dict[str, Journey] = {}
        self.started = 0  # journeys begun: a visitor back after the horizon begins anew
        self.next_sweep = -(2**63)

    def feed(self, event: ClickEvent) -> None:
        if event.ts >= self.next_sweep:
            day = event.ts - event.ts % SWEEP_MS
            self._forget(day)
            self.next_sweep = day + SWEEP_MS
        journeys = self.journeys
        known = journeys.get(event.visitor_id)
        journey, step = advance(known, event, self.rules, self.limits, self.capacity, dwell=False)
        if journey is not known:
            self.started += 1
            journeys[event.visitor_id] = journey
        if step.decisions:
            self._add(step)

    def _forget(self, now: int) -> None:
        """Drop the journeys of visitors gone longer than the horizon at ``now``, the
        start of a day of event time: memory stays bounded by the visitors active within
        the horizon and a day, as the worker's table is.

        Their instants fire first, up to the end of time, as at the end of the input. The
        engine would start such a visitor anew on its next event anyway, but it fires
        only the instants before that event (the same ones unless a presence window
        outlasts the horizon) and drops an event whose id the old journey saw. So sweeps
        fall on days of event time, never on counts of events: a journey's fate then
        hangs on its own events alone, and a run split by visitor gives what one gives."""
        oldest = now - horizon(self.rules, self.limits)
        gone = [v for v, journey in self.journeys.items() if journey.clock < oldest]
        for visitor in gone:
            self._add(tick(self.journeys.pop(visitor), END, self.rules, self.limits, self.capacity))

    def _add(self, step: Step) -> None:
        self.result.decisions += step.decisions
        self.result.invitations += step.invitations

    def finish(self, events: int) -> Result:
        # The input ends; time goes on: every instant still pending fires.
        result = self.result
        for journey in self.journeys.values():
            self._add(tick(journey, END, self.rules, self.limits, self.capacity))
        result.events = events
        result.visitors = self.started
        result.decisions.sort(key=_output_order)
        result.invitations.sort(key=_output_order)
        return result


def run(
    events: list[tuple[int, int, ClickEvent]],
    rules: CompiledRules,
    limits: Limits,
    result: Result,
    progress: Callable[[int], None] | None = None,
    capacity: CapacityView | None = None,
) -> Result:
    """Drive the engine over ``events`` (any order) and fill ``result``."""
    events.sort(key=_time_then_line)
    driver = _Driver(rules, limits, result, capacity)
    for n, (_, _, event) in enumerate(events, 1):
        driver.feed(event)
        if progress is not None and n % 50_000 == 0:
            progress(n)
    return apply_budgets(driver.finish(len(events)), rules)


def apply_budgets(result: Result, rules: CompiledRules) -> Result:
    """Hold back the invitations their queues' budgets refuse (docs/contract.md, "Budgets"):
    once every visitor's invitations are known, for the rounds need them all, so a run
    split by visitor applies them after its parts are added up."""
    if not rules.budgets:
        return result
    held = refused(result.invitations, rules.budgets)
    if held:
        result.invitations = [i for i in result.invitations if i["invitation_id"] not in held]
        result.decisions = [
            over_budget(d) if d["outcome"] == "invited" and d["invitation_id"] in held else d
            for d in result.decisions
        ]
    return result


def _time_then_line(item: tuple[int, int, ClickEvent]) -> tuple[int, int]:
    return item[0], item[1]


def _output_order(record: dict[str, Any]) -> tuple[str, str, str]:
    # Records with equal keys (one visitor, rule and instant) keep the order they were
    # made in (a stable sort). A visitor's records are all made by one process, in the
    # same order however the run is split, so a split run sorts as one does.
    return record["triggered_at"], record["visitor_id"], record["rule_id"]


class _OutOfOrder(Exception):
    """The file is not in event-time order: it must be read whole and sorted."""


def backtest_file(
    path: Path,
    rules: CompiledRules,
    limits: Limits,
    *,
    show_progress: bool,
    capacity: Path | None = None,
    processes: int = 1,
) -> Result:
    """Run the backtest over a JSON-lines file (and a JSON-lines file of capacity records).

    In one process, a file already in time order (the usual recording) streams through
    the engine with only the journeys in memory; otherwise it is read again, whole, and
    sorted. ``processes`` > 1 splits the run by visitor (``_split``) where ``os.fork``
    exists; the result is the same.
    """
    start = Result()
    view = None
    if capacity is not None:
        with capacity.open("rb") as handle:
            view = read_capacity(handle, start)
    # Events and journeys hold no reference cycles: the cyclic collector would only
    # rescan millions of live objects (measured: a third of the run time).
    gc.disable()
    try:
        size = path.stat().st_size
        if processes > 1 and hasattr(os, "fork") and size > 0:
            bar = Progress(size, enabled=show_progress)
            return apply_budgets(
                _split(path, rules, limits, bar, _copy(start), view, processes), rules
            )
        try:
            bar = Progress(size, enabled=show_progress)
            return apply_budgets(_stream(path, rules, limits, bar, _copy(start), view), rules)
        except _OutOfOrder:
            pass
        result = _copy(start)
        bar = Progress(path.stat().st_size, enabled=show_progress)
        with path.open("rb") as handle:
            events = read_events(bar.lines(handle), result)
        bar.phase("engine", len(events))
        run(events, rules, limits, result, bar.update if bar.enabled else None, view)
        bar.done()
        return result  # run applied the budgets
    finally:
        gc.enable()


def default_processes(path: Path) -> int:
    """2 where ``os.fork`` exists and the file is large enough for a fork to pay, else 1."""
    return 2 if hasattr(os, "fork") and path.stat().st_size >= SPLIT_BYTES else 1


def _copy(start: Result) -> Result:
    """A fresh result that keeps what reading the capacity file counted."""
    return Result(
        capacity_records=start.capacity_records,
        bad_capacity_lines=start.bad_capacity_lines,
        bad_capacity_examples=list(start.bad_capacity_examples),
    )


def _stream(
    path: Path,
    rules: CompiledRules,
    limits: Limits,
    bar: Progress,
    result: Result,
    capacity: CapacityView | None,
) -> Result:
    driver = _Driver(rules, limits, result, capacity)
    latest, count = -(2**63), 0
    with path.open("rb") as handle:
        for number, line in enumerate(bar.lines(handle), 1):
            event = _parse_line(number, line, result)
            if event is None:
                continue
            if event.ts < latest:
                raise _OutOfOrder
            latest = event.ts
            driver.feed(event)
            count += 1
    bar.done()
    return driver.finish(count)


def _split(
    path: Path,
    rules: CompiledRules,
    limits: Limits,
    bar: Progress,
    result: Result,
    capacity: CapacityView | None,
    processes: int,
) -> Result:
    """The backtest of each process's visitors (``streams.split``), added up into one."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        bounds = spans(data, processes)
        agents = _first_agents(data)
        bar.phase("reading", len(agents))

        def read(part: int) -> tuple[list[list[int]], array[int]] | None:
            if part == 0:  # the children read the file; this process loads device-detector
                for n, agent in enumerate(agents, 1):
                    device_of(agent)
                    bar.update(n)
                return None
            return route_span(data, bounds[part - 1], bounds[part], processes)

        routed = [span for span in run_split(read, processes + 1, name="backtest") if span]
        starts = array("q")  # line i starts at starts[i]: for the numbers of bad lines
        for _, span_starts in routed:
            starts += span_starts
        shares = [
            list(chain.from_iterable(keys[part] for keys, _ in routed)) for part in range(processes)
        ]
        del routed
        bar.phase("engine", len(shares[0]))

        def work(part: int) -> tuple[Result, list[int]]:
            shown = bar if part == 0 and bar.enabled else None
            return _share(data, starts, shares[part], rules, limits, capacity, shown)

        parts = run_split(work, processes, name="backtest")
    bar.done()
    for part, _ in parts:
        result.invitations += part.invitations
        result.decisions += part.decisions
        result.events += part.events
        result.visitors += part.visitors
        result.bad_lines += part.bad_lines
    result.invitations.sort(key=_output_order)
    result.decisions.sort(key=_output_order)
    quoted = sorted(
        (n, text)
        for part, firsts in parts
        for n, text in zip(firsts, part.bad_examples, strict=True)
    )
    result.bad_examples = [text for _, text in quoted[:MAX_EXAMPLES]]
    return result


def _first_agents(data: mmap.mmap) -> list[str]:
    """The user agents of the file's first events, at most ``WARM_AGENTS`` of them.

    device-detector compiles its patterns as user agents reach them: 2-3 s in each new
    process, most of it the same patterns whatever the browser. Parsed before the fork,
    they are compiled once, and each child inherits them (and these agents' devices)."""
    agents: dict[str, None] = {}
    for line in data[:WARM_BYTES].split(b"\n")[:-1]:
        try:
            agent = parse_event(line).user_agent
        except InvalidEvent:
            continue
        if agent:
            agents[agent] = None
            if len(agents) == WARM_AGENTS:
                break
    return list(agents)


def _share(
    data: mmap.mmap,
    starts: array[int],
    keys: list[int],
    rules: CompiledRules,
    limits: Limits,
    capacity: CapacityView | None,
    bar: Progress | None,
) -> tuple[Result, list[int]]:
    """One process's lines in time order (ties: line order), each parsed, fed and let go.
    Returns its result and the line numbers of the bad lines it quotes: its first by line
    number, whatever the order it met them in."""
    keys.sort()
    result = Result()
    driver = _Driver(rules, limits, result, capacity)
    feed, seek, readline, bad, events = driver.feed, data.seek, data.readline, [], 0
    for n, packed in enumerate(keys, 1):
        start = index_of(packed)  # the line's byte offset
        seek(start)
        line = readline()  # with its newline, as iterating over the file gives it
        try:
            event = parse_event(line)
        except InvalidEvent:
            if line.strip():  # blank lines are no bad lines
                bad.append(start)
            continue
        feed(event)
        events += 1
        if bar is not None and n % 50_000 == 0:
            bar.update(n)
    driver.finish(events)
    firsts = [bisect_left(starts, start) + 1 for start in heapq.nsmallest(MAX_EXAMPLES, bad)]
    for number in firsts:  # parsed again for the message: a handful of lines
        seek(starts[number - 1])
        _parse_line(number, readline(), result)
    result.bad_lines = len(bad)
    return result, firsts


class Progress:
    """A one-line progress bar on standard error, only when it is a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.label, self.total, self.count, self._shown = "reading", max(total, 1), 0, -1

    def lines(self, handle: IO[bytes]) -> Iterable[bytes]:
        """The handle's lines, counted on the bar when it shows."""
        return self._counting(handle) if self.enabled else handle

    def _counting(self, handle: IO[bytes]) -> Iterator[bytes]:
        for line in handle:
            self.count += len(line)
            self._show()
            yield line

    def update(self, count: int) -> None:
        self.count = count
        self._show()

    def phase(self, label: str, total: int) -> None:
        self.label, self.total, self.count, self._shown = label, max(total, 1), 0, -1

    def _show(self) -> None:
        pct = 100 * self.count // self.total
        if self.enabled and pct != self._shown:
            self._shown = pct
            filled = pct // 4
            sys.stderr.write(f"\r{self.label:8} [{'#' * filled}{'.' * (25 - filled)}] {pct:3d}%")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 50 + "\r")


def summary(result: Result, rules: CompiledRules) -> str:
    """Per rule: matched, invited, would have invited (shadow), suppressed (or would have
    been) by reason; then the input's counts."""
    matched: Counter[str] = Counter()
    invited: Counter[str] = Counter()
    shadow: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for d in result.decisions:
        matched[d["rule_id"]] += 1
        if d["reason"] is not None:
            reasons.setdefault(d["rule_id"], Counter())[d["reason"]] += 1
        elif d["outcome"] == "shadow":
            shadow[d["rule_id"]] += 1
        else:
            invited[d["rule_id"]] += 1
    rows = [f"{'rule':30} {'matched':>8} {'invited':>8} {'shadow':>8}  suppressed"]
    for rule in rules.rules:
        why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.get(rule.id, Counter()).items()))
        rows.append(
            f"{rule.id:30} {matched[rule.id]:8} {invited[rule.id]:8} {shadow[rule.id]:8}"
            f"  {why or '-'}"
        )
    rows.append(
        f"{result.events} events, {result.visitors} visitors, {result.bad_lines} bad lines, "
        f"{len(result.invitations)} invitations, rules version {rules.version}"
    )
    rows += [f"  bad {example}" for example in result.bad_examples]
    if result.capacity_records or result.bad_capacity_lines:
        rows.append(
            f"{result.capacity_records} capacity records, "
            f"{result.bad_capacity_lines} bad capacity lines"
        )
        rows += [f"  bad capacity {example}" for example in result.bad_capacity_examples]
    return "\n".join(rows)
