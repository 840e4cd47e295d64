"""Properties of capacity over generated visits and capacity streams: a live worker that
receives each capacity record at any moment within the delay after its ``measured_at``
(so records interleave with events in any way that allows) decides exactly as the
backtest that holds the whole capacity stream from the start."""

from __future__ import annotations

import heapq
from itertools import accumulate
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.capacity import Capacity, validate_capacity
from schemas.events import ClickEvent, validate_event
from streams.backtest import Result, run
from streams.core.capacity import CapacityView
from streams.core.engine import END, Limits, advance, tick
from streams.core.journey import Journey
from tests.unit.core.engine_helpers import SECOND, SITE, T0, check_outputs, rules

RULES = rules(
    """
    rules:
      - id: pricing
        priority: 10
        location: {include: ["*/pricing"]}
        trigger: {dwell_seconds: 10}
        message: {text: "Plans?"}
        queue: sales
        capacity: {}
        frequency: {per_session: 2}
      - id: two-pages
        priority: 5
        trigger: {pages_in_session: 2}
        message: {text: "Help?"}
        queue: experts
        capacity: {min_free: 2, max_wait_s: 30, min_agents: 1}
        frequency: {per_session: null}
      - id: products
        location: {include: ["*/products/*"]}
        trigger: {dwell_seconds: 20}
        message: {text: "Choosing?"}
        queue: sales
        capacity: {min_agents: 2}
      - id: plain
        location: {include: ["*/about"]}
        trigger: {dwell_seconds: 5}
        message: {text: "Hi"}
    """
)
DELAY = 5 * SECOND
URLS = ("https://shop.example/pricing", "https://shop.example/products/tea",
        "https://shop.example/about")  # fmt: skip
KINDS = ("page_view", "page_view", "page_ping", "page_ping", "page_ping", "page_leave")
GAPS = (0, 1_000, 3_000, 5_000, 5_000, 9_000, 15_000, 40_000)
CAPACITY_GAPS = (1_000, 4_000, 7_000, 15_000, 40_000)


@st.composite
def visits(draw: st.DrawFn) -> list[ClickEvent]:
    """Page views, pings and leaves of three visitors, in event-time order."""
    offsets = accumulate(draw(st.lists(st.sampled_from(GAPS), min_size=5, max_size=40)))
    events = []
    for i, offset in enumerate(offsets):
        events.append(validate_event({
            "event_id": f"e{i}", "type": draw(st.sampled_from(KINDS)),
            "visitor_id": draw(st.sampled_from(("a", "b", "c"))), "site_id": SITE,
            "ts": T0 + offset, "url": draw(st.sampled_from(URLS)),
        }))  # fmt: skip
    return events


@st.composite
def capacity_stream(draw: st.DrawFn) -> list[tuple[int, Capacity]]:
    """Capacity records of two queues from a minute before the visits on, each with the
    instant it reaches the worker: at any moment within the delay after it was measured.
    One queue never measures twice at one instant (then the topic's order would count)."""
    out = []
    for queue in ("sales", "experts"):
        gaps = draw(st.lists(st.sampled_from(CAPACITY_GAPS), min_size=0, max_size=40))
        for at in accumulate(gaps, initial=T0 - 60 * SECOND):
            record = validate_capacity({
                "queue": queue, "agents_online": draw(st.integers(0, 3)),
                "free_slots": draw(st.integers(0, 3)),
                "expected_wait_s": draw(st.sampled_from([None, 10.0, 40.0])), "measured_at": at,
            })  # fmt: skip
            out.append((at + draw(st.integers(0, DELAY)), record))
    return out


def limits(unknown_allows: bool) -> Limits:
    return Limits(min_gap_ms=10 * SECOND, capacity_delay_ms=DELAY, capacity_max_age_ms=
                  30 * SECOND, capacity_unknown_allows=unknown_allows)  # fmt: skip


def backtest(events: list[ClickEvent], records: list[tuple[int, Capacity]],
             lim: Limits) -> list[dict[str, Any]]:  # fmt: skip
    """``beckon backtest --capacity``: the whole capacity stream known from the start."""
    view = CapacityView()
    for _, record in records:
        view.add(record)
    result = Result()
    run([(e.ts, n, e) for n, e in enumerate(events)], RULES, lim, result, capacity=view)
    return result.decisions


def live(events: list[ClickEvent], records: list[tuple[int, Capacity]],
         lim: Limits) -> list[dict[str, Any]]:  # fmt: skip
    """A live worker: each record is fed when it arrives, between events and ticks, and a
    journey is ticked when time passes its wakeup; the view keeps what a worker keeps."""
    view = CapacityView(keep_ms=lim.capacity_delay_ms + lim.capacity_max_age_ms + 3_600_000)
    arrivals = sorted(records, key=lambda r: r[0])
    journeys: dict[str, Journey] = {}
    wakeups: list[tuple[int, str]] = []  # (instant, visitor), stale ones included
    decisions: list[dict[str, Any]] = []

    def arrive(until: int) -> None:
        while arrivals and arrivals[0][0] <= until:
            view.add(arrivals.pop(0)[1])

    for e in events:
        while wakeups and wakeups[0][0] < e.ts:
            at, visitor = heapq.heappop(wakeups)
            arrive(at)
            step = tick(journeys[visitor], at, RULES, lim, view)
            decisions += step.decisions
            if step.wakeup is not None:
                heapq.heappush(wakeups, (step.wakeup, visitor))
        arrive(e.ts)
        journey, step = advance(journeys.get(e.visitor_id), e, RULES, lim, view)
        journeys[e.visitor_id] = journey
        decisions += step.decisions
        if step.wakeup is not None:
            heapq.heappush(wakeups, (step.wakeup, e.visitor_id))
    arrive(END)
    for journey in journeys.values():
        decisions += tick(journey, END, RULES, lim, view).decisions
    return sorted(decisions, key=lambda d: (d["triggered_at"], d["visitor_id"], d["rule_id"]))


@settings(max_examples=200, deadline=None)
@given(visits(), capacity_stream(), st.booleans())
def test_capacity_arriving_within_the_delay_decides_as_the_backtest(
    events: list[ClickEvent], records: list[tuple[int, Capacity]], unknown_allows: bool
) -> None:
    lim = limits(unknown_allows)
    expected = backtest(events, records, lim)
    check_outputs(expected, [])
    assert live(events, records, lim) == expected


def test_the_generated_streams_reach_every_outcome() -> None:
    """Against a property that passes because no example ever suppressed or invited."""
    seen: set[str | None] = set()

    @settings(max_examples=150, deadline=None, database=None)
    @given(visits(), capacity_stream(), st.booleans())
    def gather(events: list[ClickEvent], records: list[tuple[int, Capacity]], allow: bool) -> None:
        seen.update(d["reason"] for d in backtest(events, records, limits(allow)))

    gather()
    assert {None, "no_capacity"} <= seen
