"""Rules in shadow mode: decided and recorded, never sent (CONTRACT "Shadow mode")."""

from __future__ import annotations

from typing import Any

from schemas.instants import parse_instant
from streams.core.engine import END, Limits, advance, tick
from streams.core.rules import CompiledRules
from tests.unit.core.engine_helpers import (
    MINUTE,
    OTHER,
    SECOND,
    T0,
    Outcome,
    drive,
    pings,
    rules,
    view,
)


def decided(out: Outcome) -> list[tuple[str, int, str, str | None]]:
    """(rule id, ms after T0, outcome, reason) for every decision."""
    return [
        (d["rule_id"], _ms(d["triggered_at"]), d["outcome"], d["reason"]) for d in out.decisions
    ]


def _ms(instant: str) -> int:
    return parse_instant(instant) - T0


def live_only(out: Outcome, shadow_ids: set[str]) -> tuple[list[Any], list[Any]]:
    """The live rules' decisions and the invitations, without the rules version (which
    names the whole set, so it differs when a shadow rule is added)."""
    decisions = [
        {k: v for k, v in d.items() if k != "rules_version"}
        for d in out.decisions
        if d["rule_id"] not in shadow_ids
    ]
    invitations = [
        {**i, "context": {k: v for k, v in i["context"].items() if k != "rules_version"}}
        for i in out.invitations
    ]
    return decisions, invitations


def test_shadow_rule_alone_records_that_it_would_invite_and_sends_nothing() -> None:
    shadow = rules(
        """
        rules:
          - {id: trial, mode: shadow, trigger: {dwell_seconds: 10}, message: {text: "Hi"}}
        """
    )

    out = drive([view(T0)], shadow)

    assert decided(out) == [("trial", 10 * SECOND, "shadow", None)]
    assert out.invitations == []


def test_shadow_rule_in_a_holdout_records_the_holdout() -> None:
    shadow = rules(
        """
        rules:
          - {id: trial, mode: shadow, holdout_pct: 100, trigger: {pages_in_session: 1},
             message: {text: "Hi"}}
        """
    )

    out = drive([view(T0)], shadow)

    assert decided(out) == [("trial", 0, "shadow", "holdout")]


LIVE = """
rules:
  - {id: live, priority: 1, trigger: {pages_in_session: 1}, message: {text: "A"}}
  - {id: later, trigger: {dwell_seconds: 90}, frequency: {per_session: null},
     message: {text: "B"}}
"""
HIGH_SHADOW = """
  - {id: trial, mode: shadow, priority: 9, trigger: {pages_in_session: 1}, message: {text: "C"}}
"""


def test_higher_priority_shadow_rule_leaves_the_live_output_as_it_was() -> None:
    events = [view(T0), view(T0 + 2 * MINUTE, OTHER), *pings(T0 + 2 * MINUTE, T0 + 4 * MINUTE)]

    without = drive(events, rules(LIVE))
    with_shadow = drive(events, rules(LIVE + HIGH_SHADOW))

    assert live_only(with_shadow, {"trial"}) == live_only(without, set())
    assert [i["rule_id"] for i in with_shadow.invitations] == ["live", "later"]
    # The shadow rule ranks first at T0, so it would have invited; on the second page its
    # own per_session cap (1) counts that would-be invitation.
    assert [d for d in decided(with_shadow) if d[0] == "trial"] == [
        ("trial", 0, "shadow", None),
        ("trial", 2 * MINUTE, "shadow", "per_session"),
    ]


def test_shadow_rule_below_a_live_rule_is_lower_priority() -> None:
    two = rules(
        """
        rules:
          - {id: live, priority: 5, trigger: {pages_in_session: 1}, message: {text: "A"}}
          - {id: trial, mode: shadow, trigger: {pages_in_session: 1}, message: {text: "B"}}
        """
    )

    out = drive([view(T0)], two)

    assert decided(out) == [
        ("live", 0, "invited", None),
        ("trial", 0, "shadow", "lower_priority"),
    ]


def test_shadow_rule_ranks_below_a_higher_shadow_rule_and_live_rules_ignore_both() -> None:
    three = rules(
        """
        rules:
          - {id: first, mode: shadow, priority: 9, trigger: {pages_in_session: 1},
             message: {text: "A"}}
          - {id: second, mode: shadow, priority: 5, trigger: {pages_in_session: 1},
             message: {text: "B"}}
          - {id: live, trigger: {pages_in_session: 1}, message: {text: "C"}}
        """
    )

    out = drive([view(T0)], three)

    assert decided(out) == [
        ("first", 0, "shadow", None),
        ("second", 0, "shadow", "lower_priority"),
        ("live", 0, "invited", None),
    ]


def test_shadow_rule_per_day_cap_counts_its_own_would_be_invitations() -> None:
    daily = rules(
        """
        rules:
          - id: trial
            mode: shadow
            trigger: {dwell_seconds: 10}
            frequency: {per_session: null, per_day: 1}
            message: {text: "Hi"}
        """
    )

    out = drive([view(T0), view(T0 + 2 * MINUTE, OTHER)], daily)

    assert decided(out) == [
        ("trial", 10 * SECOND, "shadow", None),
        ("trial", 2 * MINUTE + 10 * SECOND, "shadow", "per_day"),
    ]


def test_shadow_rule_fires_once_per_page_view() -> None:
    every_page = rules(
        """
        rules:
          - {id: trial, mode: shadow, trigger: {dwell_seconds: 10},
             frequency: {per_session: null}, message: {text: "Hi"}}
        """
    )

    out = drive([view(T0), *pings(T0, T0 + 5 * MINUTE)], every_page)

    assert decided(out) == [("trial", 10 * SECOND, "shadow", None)]


def test_would_be_invitation_does_not_start_the_live_min_gap() -> None:
    # As in test_min_gap_of_60_seconds_by_default..., but the first rule is in shadow
    # mode: nothing was sent at T0, so the live rule invites at +30 s.
    two = rules(
        """
        rules:
          - {id: first, mode: shadow, trigger: {pages_in_session: 1}, message: {text: "A"}}
          - {id: second, trigger: {dwell_seconds: 30}, message: {text: "B"}}
        """
    )

    out = drive([view(T0)], two)

    assert decided(out) == [
        ("first", 0, "shadow", None),
        ("second", 30 * SECOND, "invited", None),
    ]


def test_shadow_rule_is_checked_against_the_live_min_gap() -> None:
    two = rules(
        """
        rules:
          - {id: first, trigger: {pages_in_session: 1}, message: {text: "A"}}
          - {id: second, mode: shadow, trigger: {dwell_seconds: 30}, message: {text: "B"}}
        """
    )

    out = drive([view(T0)], two)

    assert decided(out) == [
        ("first", 0, "invited", None),
        ("second", 30 * SECOND, "shadow", "min_gap"),
    ]


def test_rule_promoted_from_shadow_to_live_starts_with_what_was_really_sent() -> None:
    def one(mode: str) -> CompiledRules:
        return rules(
            f"""
            rules:
              - {{id: trial, mode: {mode}, trigger: {{dwell_seconds: 10}},
                 message: {{text: "Hi"}}}}
            """
        )

    limits = Limits()
    journey, first = advance(None, view(T0), one("shadow"), limits)
    journey, second = advance(journey, view(T0 + 2 * MINUTE, OTHER), one("shadow"), limits)
    promoted = tick(journey, END, one("live"), limits)

    assert [(d["outcome"], d["reason"]) for d in first.decisions + second.decisions] == [
        ("shadow", None)
    ]
    assert [(d["outcome"], d["reason"]) for d in promoted.decisions] == [("invited", None)]
    assert len(promoted.invitations) == 1
