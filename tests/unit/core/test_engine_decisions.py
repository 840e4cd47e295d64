"""Once per page view, priority, and every suppression reason (CONTRACT "When a rule fires")."""

from __future__ import annotations

from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from tests.unit.core.engine_helpers import (
    DAY,
    HOUR,
    MINUTE,
    OTHER,
    SECOND,
    T0,
    VISITOR,
    at,
    drive,
    pings,
    respond,
    rules,
    view,
)

EVERY_PAGE = rules(
    """
    rules:
      - id: every-page
        trigger: {dwell_seconds: 10}
        frequency: {per_session: null}
        message: {text: "Hi"}
    """
)
ONCE_A_SESSION = rules(
    """
    rules:
      - id: once
        trigger: {dwell_seconds: 10}
        message: {text: "Hi"}
    """
)


# --- once per page view ---------------------------------------------------------------


def test_rule_fires_once_per_page_view_however_long_the_visitor_stays() -> None:
    out = drive([view(T0), *pings(T0 + 10 * SECOND, T0 + 10 * MINUTE)], EVERY_PAGE)

    assert out.fired() == [("every-page", T0 + 10 * SECOND, "invited")]


def test_rule_fires_again_after_a_new_page_view() -> None:
    events = [view(T0), view(T0 + 2 * MINUTE, OTHER)]

    out = drive(events, EVERY_PAGE)

    assert out.fired() == [
        ("every-page", T0 + 10 * SECOND, "invited"),
        ("every-page", T0 + 2 * MINUTE + 10 * SECOND, "invited"),
    ]


def test_per_session_default_of_one_suppresses_the_second_page() -> None:
    events = [view(T0), view(T0 + 2 * MINUTE, OTHER)]

    out = drive(events, ONCE_A_SESSION)

    assert out.fired() == [
        ("once", T0 + 10 * SECOND, "invited"),
        ("once", T0 + 2 * MINUTE + 10 * SECOND, "per_session"),
    ]


def test_suppressed_rule_waits_for_the_next_page_view() -> None:
    events = [view(T0), view(T0 + 2 * MINUTE, OTHER), *pings(T0 + 130 * SECOND, T0 + 5 * MINUTE)]

    out = drive(events, ONCE_A_SESSION)

    assert [reason for _, _, reason in out.fired()] == ["invited", "per_session"]


def test_per_session_resets_in_a_new_session() -> None:
    events = [view(T0), view(T0 + 2 * MINUTE, OTHER), view(T0 + 40 * MINUTE)]

    out = drive(events, ONCE_A_SESSION)

    assert [reason for _, _, reason in out.fired()] == ["invited", "per_session", "invited"]


# --- priority -------------------------------------------------------------------------


def test_higher_priority_invites_and_the_other_is_suppressed_lower_priority() -> None:
    two = rules(
        """
        rules:
          - {id: a-low, priority: 1, trigger: {dwell_seconds: 10}, message: {text: "A"}}
          - {id: b-high, priority: 10, trigger: {dwell_seconds: 10}, message: {text: "B"}}
        """
    )

    out = drive([view(T0)], two)

    assert sorted(out.fired()) == [
        ("a-low", T0 + 10 * SECOND, "lower_priority"),
        ("b-high", T0 + 10 * SECOND, "invited"),
    ]


def test_equal_priorities_go_to_the_lower_rule_id() -> None:
    two = rules(
        """
        rules:
          - {id: b-rule, priority: 5, trigger: {dwell_seconds: 10}, message: {text: "B"}}
          - {id: a-rule, priority: 5, trigger: {dwell_seconds: 10}, message: {text: "A"}}
        """
    )

    out = drive([view(T0)], two)

    assert sorted(out.fired()) == [
        ("a-rule", T0 + 10 * SECOND, "invited"),
        ("b-rule", T0 + 10 * SECOND, "lower_priority"),
    ]


def test_rules_firing_at_one_instant_from_different_conditions_compete() -> None:
    two = rules(
        """
        rules:
          - {id: dwell, priority: 1, trigger: {dwell_seconds: 10}, message: {text: "A"}}
          - {id: pages, priority: 2, trigger: {pages_in_session: 2}, message: {text: "B"}}
        """
    )
    events = [view(T0, OTHER), view(T0 + 5 * SECOND), view(T0 + 15 * SECOND)]
    # The second page's dwell threshold (+15 s) is the instant of the third page_view, where
    # the current page is new: only pages fires there; dwell fires on the third at +25 s.

    out = drive(events, two)

    assert out.fired() == [
        ("pages", T0 + 5 * SECOND, "invited"),
        ("pages", T0 + 15 * SECOND, "per_session"),
        ("dwell", T0 + 25 * SECOND, "min_gap"),
    ]


def test_lower_priority_loser_does_not_fire_again_on_the_same_page() -> None:
    two = rules(
        """
        rules:
          - {id: a-low, priority: 1, trigger: {dwell_seconds: 10}, message: {text: "A"}}
          - {id: b-high, priority: 10, trigger: {dwell_seconds: 10}, message: {text: "B"}}
        """
    )

    out = drive([view(T0), *pings(T0 + 10 * SECOND, T0 + 5 * MINUTE)], two)

    assert len(out.decisions) == 2


# --- holdout --------------------------------------------------------------------------


def holdout(pct: int) -> CompiledRules:
    return rules(
        f"""
        rules:
          - id: held
            holdout_pct: {pct}
            trigger: {{pages_in_session: 1}}
            message: {{text: "Hi"}}
        """
    )


def test_holdout_of_100_percent_always_holds_out() -> None:
    out = drive([view(T0)], holdout(100))

    assert (out.fired(), out.invitations) == ([("held", T0, "holdout")], [])


def test_holdout_of_0_percent_never_holds_out() -> None:
    out = drive([view(T0)], holdout(0))

    assert out.fired() == [("held", T0, "invited")]


def test_holdout_is_stable_per_visitor_and_splits_visitors() -> None:
    visitors = [f"visitor-{n}" for n in range(40)]
    events = [view(T0, visitor=v) for v in visitors]

    first, second = drive(events, holdout(50)), drive(events, holdout(50))

    held = {d["visitor_id"] for d in first.decisions if d["reason"] == "holdout"}
    assert held == {d["visitor_id"] for d in second.decisions if d["reason"] == "holdout"}
    assert 0 < len(held) < len(visitors)


# --- per_day --------------------------------------------------------------------------


def test_per_day_suppresses_within_the_rules_local_day() -> None:
    tokyo_daily = rules(
        """
        rules:
          - id: daily
            timeframe: {timezone: Asia/Tokyo}
            trigger: {pages_in_session: 1}
            frequency: {per_session: null, per_day: 1}
            message: {text: "Hi"}
        """
    )
    first = at("2026-12-01T22:00:00+09:00")

    out = drive([view(first), view(first + 2 * HOUR - 31 * MINUTE)], tokyo_daily)

    assert [reason for _, _, reason in out.fired()] == ["invited", "per_day"]


def test_per_day_resets_on_a_new_local_day_in_the_rules_zone() -> None:
    # 22:00 and 00:30 in Tokyo: the same UTC date (Dec 1), two local dates.
    tokyo_daily = rules(
        """
        rules:
          - id: daily
            timeframe: {timezone: Asia/Tokyo}
            trigger: {pages_in_session: 1}
            frequency: {per_session: null, per_day: 1}
            message: {text: "Hi"}
        """
    )
    events = [view(at("2026-12-01T22:00:00+09:00")), view(at("2026-12-02T00:30:00+09:00"))]

    out = drive(events, tokyo_daily)

    assert [reason for _, _, reason in out.fired()] == ["invited", "invited"]


def test_per_day_without_a_time_frame_counts_utc_days() -> None:
    utc_daily = rules(
        """
        rules:
          - id: daily
            trigger: {pages_in_session: 1}
            frequency: {per_session: null, per_day: 1}
            message: {text: "Hi"}
        """
    )
    events = [
        view(at("2026-12-01T22:00:00Z")),
        view(at("2026-12-01T23:30:00Z")),
        view(at("2026-12-02T00:30:00Z")),
    ]

    out = drive(events, utc_daily)

    assert [reason for _, _, reason in out.fired()] == ["invited", "per_day", "invited"]


def test_per_day_allows_up_to_its_count() -> None:
    twice = rules(
        """
        rules:
          - id: daily
            trigger: {pages_in_session: 1}
            frequency: {per_session: null, per_day: 2}
            message: {text: "Hi"}
        """
    )
    events = [view(T0), view(T0 + 2 * MINUTE, OTHER), view(T0 + 4 * MINUTE)]

    out = drive(events, twice)

    assert [reason for _, _, reason in out.fired()] == ["invited", "invited", "per_day"]


# --- min_gap --------------------------------------------------------------------------

TWO_RULES = rules(
    """
    rules:
      - {id: first, trigger: {pages_in_session: 1}, message: {text: "A"}}
      - {id: second, trigger: {dwell_seconds: 30}, message: {text: "B"}}
    """
)


def test_min_gap_of_60_seconds_by_default_suppresses_a_second_invitation() -> None:
    out = drive([view(T0)], TWO_RULES)

    assert out.fired() == [("first", T0, "invited"), ("second", T0 + 30 * SECOND, "min_gap")]


def test_min_gap_counts_invitations_from_every_rule_and_is_configurable() -> None:
    out = drive([view(T0)], TWO_RULES, Limits(min_gap_ms=10 * SECOND))

    assert out.fired() == [("first", T0, "invited"), ("second", T0 + 30 * SECOND, "invited")]


def test_min_gap_does_not_suppress_after_the_gap() -> None:
    events = [view(T0), view(T0 + 61 * SECOND, OTHER)]

    out = drive(events, EVERY_PAGE)

    assert [reason for _, _, reason in out.fired()] == ["invited", "invited"]


def test_min_gap_counts_from_the_last_invitation_not_the_last_suppression() -> None:
    # invited at +10 s; suppressed (min_gap) at +50 s; invited at +80 s (70 s after +10 s).
    events = [view(T0), view(T0 + 40 * SECOND, OTHER), view(T0 + 70 * SECOND)]

    out = drive(events, EVERY_PAGE)

    assert [reason for _, _, reason in out.fired()] == ["invited", "min_gap", "invited"]


# --- after_decline --------------------------------------------------------------------

AFTER_DECLINE = rules(
    """
    rules:
      - id: offer
        trigger: {pages_in_session: 1}
        frequency: {per_session: null, after_decline_days: 2}
        message: {text: "Hi"}
    """
)


def first_invitation_id() -> str:
    return str(drive([view(T0)], AFTER_DECLINE).invitations[0]["invitation_id"])


def test_decline_suppresses_the_rule_within_its_days() -> None:
    events = [
        view(T0),
        respond(T0 + 5 * SECOND, first_invitation_id(), "declined"),
        view(T0 + 5 * MINUTE),
        view(T0 + DAY),
    ]

    out = drive(events, AFTER_DECLINE)

    assert [reason for _, _, reason in out.fired()] == ["invited", "after_decline", "after_decline"]


def test_decline_no_longer_suppresses_after_its_days() -> None:
    events = [
        view(T0),
        respond(T0 + 5 * SECOND, first_invitation_id(), "declined"),
        view(T0 + 2 * DAY + HOUR),
    ]

    out = drive(events, AFTER_DECLINE)

    assert [reason for _, _, reason in out.fired()] == ["invited", "invited"]


def test_accepted_invitation_does_not_suppress_as_a_decline() -> None:
    events = [
        view(T0),
        respond(T0 + 5 * SECOND, first_invitation_id(), "accepted"),
        view(T0 + 5 * MINUTE),
    ]

    out = drive(events, AFTER_DECLINE)

    assert [reason for _, _, reason in out.fired()] == ["invited", "invited"]


def test_decline_of_an_unknown_invitation_does_not_suppress() -> None:
    events = [view(T0), respond(T0 + 5 * SECOND, "not-an-invitation"), view(T0 + 5 * MINUTE)]

    out = drive(events, AFTER_DECLINE)

    assert [reason for _, _, reason in out.fired()] == ["invited", "invited"]


def test_widget_answers_are_counted_per_rule_once_each() -> None:
    invitation = first_invitation_id()
    events = [
        view(T0),
        respond(T0 + 1 * SECOND, invitation, "shown"),  # from the delivery service
        respond(T0 + 2 * SECOND, invitation, "shown"),  # and from the widget: one showing
        respond(T0 + 3 * SECOND, invitation, "accepted"),
        respond(T0 + 4 * SECOND, "not-an-invitation", "accepted"),
    ]

    out = drive(events, AFTER_DECLINE)

    assert out.answers == [("offer", "shown"), ("offer", "accepted")]
    assert out.journeys[VISITOR].answers == {"offer": {"shown": 1, "accepted": 1}}


def test_decline_of_one_rule_does_not_suppress_another() -> None:
    two = rules(
        """
        rules:
          - id: offer
            trigger: {pages_in_session: 1}
            frequency: {after_decline_days: 2}
            message: {text: "A"}
          - id: other
            location: {include: ["*/about"]}
            trigger: {dwell_seconds: 10}
            frequency: {after_decline_days: 2}
            message: {text: "B"}
        """
    )
    declined = str(drive([view(T0)], two).invitations[0]["invitation_id"])
    events = [view(T0), respond(T0 + 5 * SECOND, declined), view(T0 + 5 * MINUTE, OTHER)]

    out = drive(events, two)

    assert out.fired() == [
        ("offer", T0, "invited"),
        ("offer", T0 + 5 * MINUTE, "after_decline"),
        ("other", T0 + 5 * MINUTE + 10 * SECOND, "invited"),
    ]


def test_winner_suppressed_by_a_limit_still_suppresses_lower_priority_rules() -> None:
    # Reading of "the highest priority wins; the others are recorded as suppressed": the
    # winner is chosen before frequency limits, so a lower rule does not step in.
    two = rules(
        """
        rules:
          - {id: high, priority: 9, holdout_pct: 100, trigger: {pages_in_session: 1},
             message: {text: "A"}}
          - {id: low, priority: 1, trigger: {pages_in_session: 1}, message: {text: "B"}}
        """
    )

    out = drive([view(T0)], two)

    assert out.fired() == [("high", T0, "holdout"), ("low", T0, "lower_priority")]
