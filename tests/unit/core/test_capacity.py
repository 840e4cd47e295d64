"""The capacity clause: the as-of lookup in event time, unknown capacity, and what a rule
suppressed for ``no_capacity`` does next. Literal events and capacity records."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.capacity import Capacity, validate_capacity
from schemas.rules import CapacityNeed
from streams.core.capacity import CapacityView, capacity_at, has_capacity
from streams.core.engine import END, Limits, advance, tick
from streams.core.journey import Journey
from streams.core.rules import CompiledRules
from tests.unit.core.engine_helpers import OTHER, SECOND, T0, pings, rules, view

RULES = rules(
    """
    rules:
      - id: pricing
        trigger: {dwell_seconds: 30}
        message: {text: "Questions?"}
        queue: sales
        capacity: {min_free: 1, max_wait_s: 60}
        frequency: {per_session: null}
    """
)
DWELL = 30 * SECOND  # the rule's instant after a page view at T0


def cap(at: int, free: int = 1, agents: int = 1, wait: float | None = 0.0,
        queue: str = "sales") -> Capacity:  # fmt: skip
    data: dict[str, Any] = {"queue": queue, "agents_online": agents, "free_slots": free,
                            "expected_wait_s": wait, "measured_at": at}  # fmt: skip
    return validate_capacity(data)


def capacity_view(*records: Capacity, keep_ms: int | None = None) -> CapacityView:
    out = CapacityView(keep_ms)
    for record in records:
        out.add(record)
    return out


def free_at(records: CapacityView, t: int, queue: str = "sales") -> int | None:
    """The free slots of the record the lookup finds at ``t``, or None."""
    found = records.as_of(queue, t)
    return None if found is None else found.free_slots


def fire(
    capacity: CapacityView | None, limits: Limits | None = None, compiled: CompiledRules = RULES
) -> list[tuple[str, str | None]]:
    """A view of PAGE at T0 with pings to T0 + 30 s; (rule, reason) of every decision."""
    limits = limits or Limits()
    journey: Journey | None = None
    decisions = []
    for e in [view(T0), *pings(T0 + 10 * SECOND, T0 + DWELL)]:
        journey, step = advance(journey, e, compiled, limits, capacity)
        decisions += step.decisions
    assert journey is not None
    decisions += tick(journey, END, compiled, limits, capacity).decisions
    return [(d["rule_id"], d["reason"]) for d in decisions]


# --- the as-of lookup ----------------------------------------------------------------------


def test_as_of_takes_the_latest_record_at_or_before_the_instant() -> None:
    records = capacity_view(cap(T0, free=1), cap(T0 + 10 * SECOND, free=2), cap(T0 + 20 * SECOND,
                            free=3))  # fmt: skip
    assert records.as_of("sales", T0 - 1) is None
    assert free_at(records, T0) == 1
    assert free_at(records, T0 + 10 * SECOND - 1) == 1
    assert free_at(records, T0 + 10 * SECOND) == 2
    assert free_at(records, END) == 3
    assert records.as_of("support", END) is None


def test_records_fed_out_of_order_are_placed_by_measured_at() -> None:
    records = capacity_view(cap(T0 + 20 * SECOND, free=3), cap(T0, free=1), cap(T0 + 10 * SECOND,
                            free=2))  # fmt: skip
    assert [free_at(records, T0 + s * SECOND) for s in (0, 10, 20)] == [1, 2, 3]


def test_of_two_records_measured_at_the_same_instant_the_later_fed_counts() -> None:
    records = capacity_view(cap(T0, free=1), cap(T0, free=0))
    assert free_at(records, T0) == 0


def test_the_decision_sees_the_record_measured_delay_before_it() -> None:
    records = capacity_view(cap(T0, free=1), cap(T0 + 26 * SECOND, free=0))
    # At T0 + 30 s with a 5 s delay the decision looks at T0 + 25 s: the record of T0.
    seen = capacity_at(records, "sales", T0 + 30 * SECOND, 5 * SECOND, 120 * SECOND)
    assert seen is not None and seen.free_slots == 1
    seen = capacity_at(records, "sales", T0 + 31 * SECOND, 5 * SECOND, 120 * SECOND)
    assert seen is not None and seen.free_slots == 0


def test_a_record_older_than_the_max_age_is_unknown() -> None:
    records = capacity_view(cap(T0))
    assert capacity_at(records, "sales", T0 + 120 * SECOND, 5 * SECOND, 120 * SECOND) is not None
    assert capacity_at(records, "sales", T0 + 120 * SECOND + 1, 5 * SECOND, 120 * SECOND) is None
    assert capacity_at(None, "sales", T0, 0, 120 * SECOND) is None


def test_history_is_bounded_by_time_and_the_newest_is_always_kept() -> None:
    records = capacity_view(*(cap(T0 + s * SECOND) for s in range(0, 100, 5)), keep_ms=20 * SECOND)
    assert len(records) == 5  # T0 + 75 s .. T0 + 95 s
    assert records.as_of("sales", T0 + 74 * SECOND) is None
    alone = capacity_view(cap(T0), keep_ms=0)
    alone.add(cap(T0 + 300 * SECOND, free=0))
    assert len(alone) == 1 and free_at(alone, END) == 0
    # A late record older than the bound is dropped at once; the newest stays.
    alone.add(cap(T0))
    assert len(alone) == 1


# --- the clause ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("need", "record", "holds"),
    [
        (CapacityNeed(), cap(T0, free=1), True),
        (CapacityNeed(), cap(T0, free=0), False),
        (CapacityNeed(min_free=0), cap(T0, free=0, agents=0), True),
        (CapacityNeed(min_free=2), cap(T0, free=1), False),
        (CapacityNeed(min_agents=2), cap(T0, agents=2), True),
        (CapacityNeed(min_agents=2), cap(T0, agents=1), False),
        (CapacityNeed(max_wait_s=60), cap(T0, wait=60), True),
        (CapacityNeed(max_wait_s=60), cap(T0, wait=60.5), False),
    ],
)
def test_the_clause_on_a_known_record(need: CapacityNeed, record: Capacity, holds: bool) -> None:
    assert has_capacity(need, record, unknown_allows=False) is holds


def test_unknown_capacity_and_an_unestimated_wait_follow_the_setting() -> None:
    for allows in (True, False):
        assert has_capacity(CapacityNeed(), None, unknown_allows=allows) is allows
        unestimated = cap(T0, wait=None)
        wait = CapacityNeed(max_wait_s=60)
        assert has_capacity(wait, unestimated, unknown_allows=allows) is allows
        assert has_capacity(CapacityNeed(), unestimated, unknown_allows=False)


# --- the engine ----------------------------------------------------------------------------


def test_a_rule_invites_when_its_queue_has_capacity_at_the_instant() -> None:
    assert fire(capacity_view(cap(T0, free=1))) == [("pricing", None)]


def test_a_rule_is_suppressed_no_capacity_when_its_queue_has_no_free_slot() -> None:
    assert fire(capacity_view(cap(T0, free=0))) == [("pricing", "no_capacity")]


def test_capacity_measured_within_the_delay_is_not_seen() -> None:
    # Free slots came back at T0 + 26 s, under 5 s before the instant T0 + 30 s.
    records = capacity_view(cap(T0, free=0), cap(T0 + 26 * SECOND, free=1))
    assert fire(records) == [("pricing", "no_capacity")]
    assert fire(records, Limits(capacity_delay_ms=4 * SECOND)) == [("pricing", None)]


def test_another_queues_capacity_does_not_count() -> None:
    assert fire(capacity_view(cap(T0, free=3, queue="support"))) == [("pricing", None)]
    deny = Limits(capacity_unknown_allows=False)
    assert fire(capacity_view(cap(T0, free=3, queue="support")), deny) == [
        ("pricing", "no_capacity")
    ]


def test_unknown_capacity_allows_by_default_and_denies_when_set() -> None:
    stale = capacity_view(cap(T0 - 100 * SECOND, free=1))  # 130 s old at the instant
    assert fire(stale) == [("pricing", None)]
    assert fire(stale, Limits(capacity_unknown_allows=False)) == [("pricing", "no_capacity")]
    assert fire(None, Limits(capacity_unknown_allows=False)) == [("pricing", "no_capacity")]


def test_a_rule_without_the_clause_ignores_capacity() -> None:
    plain = rules(
        """
        rules:
          - id: plain
            trigger: {dwell_seconds: 30}
            message: {text: "Hi"}
            queue: sales
        """
    )
    empty = capacity_view(cap(T0, free=0, agents=0))
    assert fire(empty, Limits(capacity_unknown_allows=False), plain) == [("plain", None)]


def test_no_capacity_comes_after_the_other_reasons() -> None:
    held_out = rules(
        """
        rules:
          - id: pricing
            trigger: {dwell_seconds: 30}
            message: {text: "Questions?"}
            queue: sales
            holdout_pct: 100
            capacity: {}
        """
    )
    assert fire(capacity_view(cap(T0, free=0)), compiled=held_out) == [("pricing", "holdout")]


def test_a_suppressed_rule_waits_for_the_next_page_view_and_does_not_count() -> None:
    records = capacity_view(cap(T0, free=0), cap(T0 + 40 * SECOND, free=1))
    limits = Limits()
    journey: Journey | None = None
    decisions: list[dict[str, Any]] = []
    # No capacity at T0 + 30 s; it comes back at T0 + 40 s, but the page view is spent.
    events = [view(T0), *pings(T0 + 10 * SECOND, T0 + 90 * SECOND)]
    # A new page view at T0 + 100 s: its own instant T0 + 130 s finds capacity.
    events += [view(T0 + 100 * SECOND, OTHER), view(T0 + 101 * SECOND)]
    events += pings(T0 + 110 * SECOND, T0 + 140 * SECOND)
    for e in events:
        journey, step = advance(journey, e, RULES, limits, records)
        decisions += step.decisions
    assert journey is not None
    decisions += tick(journey, END, RULES, limits, records).decisions
    assert [(d["triggered_at"][11:19], d["reason"]) for d in decisions] == [
        ("10:00:30", "no_capacity"),
        ("10:02:11", None),
    ]
    # Only the invitation counts towards per_session and min_gap.
    assert journey.sent_session == {"pricing": 1}


def test_the_invitation_context_carries_the_capacity_its_rule_saw() -> None:
    limits, journey = Limits(), None
    invitations = []
    for e in [view(T0), *pings(T0 + 10 * SECOND, T0 + DWELL)]:
        journey, step = advance(journey, e, RULES, limits, capacity_view(cap(T0, free=2)))
        invitations += step.invitations
    assert journey is not None
    invitations += tick(journey, END, RULES, limits, capacity_view(cap(T0, free=2))).invitations
    assert invitations[0]["context"]["capacity"] == {
        "agents_online": 1, "free_slots": 2, "expected_wait_s": 0.0,
        "measured_at": "2026-12-01T10:00:00.000Z",
    }  # fmt: skip


# --- the topic's messages ------------------------------------------------------------------


def test_a_bad_message_is_refused_with_the_field_and_the_view_goes_on() -> None:
    from schemas.capacity import capacity_to_json

    records = CapacityView()
    good = capacity_to_json(cap(T0, free=2))
    assert records.fold(b"sales", b'{"queue": "sales", "free_slots": "1"}') is not None
    assert "must be the record's queue 'sales'" in str(records.fold(b"support", good))
    assert "must be the record's queue" in str(records.fold(None, good))
    assert records.fold(b"sales", None) is None  # a tombstone changes nothing
    assert records.fold(b"sales", good) is None
    assert records.fold(b"sales", good) is None  # a copy changes nothing either
    assert (records.refused, len(records), free_at(records, END)) == (3, 1, 2)
