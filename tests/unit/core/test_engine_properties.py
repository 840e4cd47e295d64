"""Properties of the engine over generated visits: order, determinism, totality, valid output."""

from __future__ import annotations

import random
from collections import defaultdict, deque
from itertools import accumulate
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import validate_event
from streams.backtest import Result, read_events, run
from streams.core.engine import END, Limits, advance, tick
from streams.core.journey import Journey
from tests.unit.core.engine_helpers import MINUTE, SITE, T0, check_outputs, rules

RULES = rules(
    """
    rules:
      - id: dwell-pricing
        priority: 5
        location: {include: ["*/pricing"]}
        trigger: {dwell_seconds: 20}
        message: {text: "Hi {first_name|there}", locales: {ja: "{first_name|}さん"}}
        frequency: {per_session: 2, after_decline_days: 1}
      - id: three-pages
        priority: 5
        trigger: {pages_in_session: 3}
        frequency: {per_session: null, per_day: 2}
        holdout_pct: 50
        message: {text: "Three"}
      - id: deep-scroll
        priority: 3
        audience: {plan: {not_in: [enterprise]}}
        trigger: {scroll_pct: 60}
        message: {text: "Scroll"}
      - id: leaving
        priority: 8
        audience: {visits: {gte: 2}}
        trigger: {event: exit_intent}
        frequency: {per_session: null, after_decline_days: 0}
        message: {text: "Bye"}
      - id: coupon-evening
        priority: 1
        timeframe: {timezone: Asia/Tokyo, hours: "19:01-19:05"}
        trigger: {event: coupon, dwell_seconds: 5}
        message: {text: "Coupon"}
      - id: journey
        trigger: {journey: ["*/products/*", "*/pricing"], session_seconds: 30}
        message: {text: "Journey"}
    """
)
LIMITS = Limits(min_gap_ms=10_000)  # short, so that more rules get to invite
VISITORS = ("a", "b")
URLS = (
    "https://shop.example/pricing",
    "https://shop.example/pricing?plan=pro#faq",
    "https://shop.example/products/tea",
    "https://shop.example/about",
)
KINDS = (
    *("page_view",) * 2,
    *("page_ping",) * 4,
    *("scroll",) * 2,
    "exit_intent",
    "page_leave",
    "identify",
    "custom",
)
# Mostly seconds apart, sometimes the same instant, now and then a new session.
SMALL_GAPS = (0, 1, 700, 2_000, 3_000, 5_000, 5_000, 9_000, 9_000, 12_000, 25_000, 45_000)
GAPS = (*SMALL_GAPS, 40 * MINUTE)
ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "first_name": st.sampled_from(["Aiko", "Ken"]),
        "language": st.sampled_from(["ja-JP", "en", "fr"]),
        "plan": st.sampled_from(["pro", "enterprise"]),
    },
)


@st.composite
def visits(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid events of a few visitors, in event-time order (equal instants allowed)."""
    gaps = draw(st.lists(st.sampled_from(GAPS), min_size=10, max_size=60))
    events = []
    current = dict.fromkeys(VISITORS, URLS[0])
    for i, offset in enumerate(accumulate(gaps)):
        kind = draw(st.sampled_from(KINDS))
        # Now and then a copy of the previous event's id: a duplicate to ignore.
        repeat = i > 0 and draw(st.integers(0, 9)) == 0
        data: dict[str, Any] = {
            "event_id": f"e{i - 1 if repeat else i}",
            "type": kind,
            "visitor_id": draw(st.sampled_from(VISITORS)),
            "site_id": SITE,
            "ts": T0 + offset,
        }
        if kind == "page_view" or (kind != "identify" and draw(st.integers(0, 4)) == 0):
            current[data["visitor_id"]] = draw(st.sampled_from(URLS))
        if kind != "identify":
            # Mostly on the visitor's current page, sometimes from another tab.
            data["url"] = current[data["visitor_id"]]
        if kind == "scroll":
            data["scroll_pct"] = draw(st.integers(0, 100))
        if kind == "custom":
            data["name"] = draw(st.sampled_from(["coupon", "other"]))
        if kind in ("identify", "page_view"):
            data["attributes"] = draw(ATTRIBUTES)
        session = draw(st.sampled_from([None, None, None, "s1", "s2"]))
        if session is not None:
            data["session_id"] = session
        validate_event(data)  # the strategy only makes valid events
        events.append(data)
    return events


def backtest(events: list[dict[str, Any]]) -> Result:
    result = Result()
    run(read_events([orjson.dumps(e) for e in events], result), RULES, LIMITS, result)
    return result


def shuffle_keeping_ties(events: list[dict[str, Any]], rnd: random.Random) -> list[dict[str, Any]]:
    """Any order, except that events of one instant keep their file order (the tie-break)."""
    shuffled = rnd.sample(events, len(events))
    same_instant: dict[int, deque[dict[str, Any]]] = defaultdict(deque)
    for e in events:
        same_instant[e["ts"]].append(e)
    return [same_instant[e["ts"]].popleft() for e in shuffled]


def outputs(result: Result) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return result.decisions, result.invitations


PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(visits(), st.randoms(use_true_random=False))
def test_input_order_never_changes_backtest_output(
    events: list[dict[str, Any]], rnd: random.Random
) -> None:
    assert outputs(backtest(shuffle_keeping_ties(events, rnd))) == outputs(backtest(events))


@PROPERTY
@given(visits())
def test_two_runs_give_identical_ids_and_outputs(events: list[dict[str, Any]]) -> None:
    assert outputs(backtest(events)) == outputs(backtest(events))


@PROPERTY
@given(visits())
def test_every_output_validates_against_the_models(events: list[dict[str, Any]]) -> None:
    result = backtest(events)  # the engine raising on a valid sequence fails here too

    check_outputs(result.decisions, result.invitations)


@PROPERTY
@given(visits())
def test_invitation_ids_are_unique(events: list[dict[str, Any]]) -> None:
    ids = [i["invitation_id"] for i in backtest(events).invitations]

    assert len(ids) == len(set(ids))


@PROPERTY
@given(visits(), st.data())
def test_declines_of_real_invitations_never_break_the_engine(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    sent = backtest(events).invitations
    declines = [
        {
            "event_id": f"r{n}",
            "type": "invitation_response",
            "visitor_id": i["visitor_id"],
            "site_id": SITE,
            "ts": T0 + data.draw(st.integers(0, 3 * 60 * MINUTE)),
            "invitation_id": i["invitation_id"],
            "response": data.draw(st.sampled_from(["declined", "shown", "dismissed"])),
        }
        for n, i in enumerate(sent)
    ]

    result = backtest(events + declines)

    check_outputs(result.decisions, result.invitations)


@PROPERTY
@given(visits())
def test_ticking_at_every_wakeup_between_events_changes_nothing(
    events: list[dict[str, Any]],
) -> None:
    # As a live worker does: when time passes a journey's wakeup before its next event,
    # tick it there. The output must be what the backtest writes.
    journeys: dict[str, Journey] = {}
    wakeups: dict[str, int | None] = {}
    decisions: list[dict[str, Any]] = []
    for data in events:
        e = validate_event(data)
        for visitor, journey in journeys.items():
            while (w := wakeups[visitor]) is not None and w < e.ts:
                step = tick(journey, w, RULES, LIMITS)
                decisions += step.decisions
                wakeups[visitor] = step.wakeup
        journey, step = advance(journeys.get(e.visitor_id), e, RULES, LIMITS)
        journeys[e.visitor_id] = journey
        decisions += step.decisions
        wakeups[e.visitor_id] = step.wakeup
    for journey in journeys.values():
        decisions += tick(journey, END, RULES, LIMITS).decisions

    def key(d: dict[str, Any]) -> tuple[str, str, str]:
        return d["triggered_at"], d["visitor_id"], d["rule_id"]

    assert sorted(decisions, key=key) == backtest(events).decisions
