"""``beckon backtest``: the engine over recorded events, offline.

Reads a JSON-lines file of ClickEvents in any order, orders them by event time (ties by
file order), drives ``streams.engine`` exactly as the live worker does, fires whatever
is still pending at the end, and returns the invitations and decisions in the order of
their instants. Lines that are not valid events are counted and kept as examples,
never fatal.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from schemas.errors import InvalidEvent
from schemas.events import ClickEvent, parse_event
from streams.engine import END, Limits, advance, tick
from streams.journey import Journey
from streams.rules import CompiledRules

MAX_EXAMPLES = 10  # bad lines quoted in the report; all are counted


@dataclass
class Result:
    invitations: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)
    visitors: int = 0


def read_events(
    lines: Iterable[bytes], result: Result, progress: Callable[[int], None] | None = None
) -> list[tuple[int, int, ClickEvent]]:
    """Parse every line; return (ts, line number, event) for the valid ones."""
    events = []
    for number, line in enumerate(lines, 1):
        if progress is not None and number % 50_000 == 0:
            progress(number)
        if not line.strip():
            continue
        try:
            event = parse_event(line)
        except InvalidEvent as exc:
            result.bad_lines += 1
            if len(result.bad_examples) < MAX_EXAMPLES:
                result.bad_examples.append(f"line {number}: {exc}")
            continue
        events.append((event.ts, number, event))
    return events


def run(
    events: list[tuple[int, int, ClickEvent]],
    rules: CompiledRules,
    limits: Limits,
    result: Result,
    progress: Callable[[int], None] | None = None,
) -> Result:
    """Drive the engine over ``events`` (any order) and fill ``result``."""
    events.sort(key=_time_then_line)
    journeys: dict[str, Journey] = {}
    decisions, invitations = result.decisions, result.invitations
    for n, (_, _, event) in enumerate(events, 1):
        journey, step = advance(journeys.get(event.visitor_id), event, rules, limits)
        journeys[event.visitor_id] = journey
        if step.decisions:
            decisions += step.decisions
            invitations += step.invitations
        if progress is not None and n % 50_000 == 0:
            progress(n)
    # The input ends; time goes on: every instant still pending fires.
    for journey in journeys.values():
        step = tick(journey, END, rules, limits)
        decisions += step.decisions
        invitations += step.invitations
    result.events = len(events)
    result.visitors = len(journeys)
    decisions.sort(key=_output_order)
    invitations.sort(key=_output_order)
    return result


def _time_then_line(item: tuple[int, int, ClickEvent]) -> tuple[int, int]:
    return item[0], item[1]


def _output_order(record: dict[str, Any]) -> tuple[str, str, str]:
    return record["triggered_at"], record["visitor_id"], record["rule_id"]


def backtest_file(
    path: Path, rules: CompiledRules, limits: Limits, *, show_progress: bool
) -> Result:
    """Run the backtest over a JSON-lines file."""
    result = Result()
    bar = Progress(path.stat().st_size, enabled=show_progress)
    with path.open("rb") as handle:
        events = read_events(_counting(handle, bar), result)
    bar.phase("engine", len(events))
    run(events, rules, limits, result, progress=bar.update)
    bar.done()
    return result


def _counting(handle: IO[bytes], bar: Progress) -> Iterator[bytes]:
    for line in handle:
        bar.advance(len(line))
        yield line


class Progress:
    """A one-line progress bar on standard error, only when it is a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.label, self.total, self.count, self._shown = "reading", max(total, 1), 0, -1

    def advance(self, amount: int) -> None:
        self.count += amount
        self._show()

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
    """Per rule: matched, invited, suppressed by reason; then the input's counts."""
    matched: Counter[str] = Counter()
    invited: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for d in result.decisions:
        matched[d["rule_id"]] += 1
        if d["outcome"] == "invited":
            invited[d["rule_id"]] += 1
        else:
            reasons.setdefault(d["rule_id"], Counter())[d["reason"]] += 1
    rows = [f"{'rule':30} {'matched':>8} {'invited':>8}  suppressed"]
    for rule in rules.rules:
        why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.get(rule.id, Counter()).items()))
        rows.append(f"{rule.id:30} {matched[rule.id]:8} {invited[rule.id]:8}  {why or '-'}")
    rows.append(
        f"{result.events} events, {result.visitors} visitors, {result.bad_lines} bad lines, "
        f"{len(result.invitations)} invitations, rules version {rules.version}"
    )
    rows += [f"  bad {example}" for example in result.bad_examples]
    return "\n".join(rows)
