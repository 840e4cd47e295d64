"""When a rule fires: time thresholds, presence and the current page."""

from __future__ import annotations

from schemas.instants import format_instant
from streams.core.engine import Limits, advance, tick
from tests.unit.core.engine_helpers import (
    OTHER,
    PAGE,
    SECOND,
    T0,
    drive,
    identify,
    leave,
    ping,
    pings,
    rules,
    view,
)

DWELL_20 = rules(
    """
    rules:
      - id: dwell
        trigger: {dwell_seconds: 20}
        message: {text: "Hi"}
    """
)
DWELL_60 = rules(
    """
    rules:
      - id: dwell
        trigger: {dwell_seconds: 60}
        message: {text: "Hi"}
    """
)


# --- dwell at the exact threshold -------------------------------------------------------


def test_advance_reports_the_dwell_threshold_as_wakeup() -> None:
    _, step = advance(None, view(T0), DWELL_20, Limits())

    assert (step.decisions, step.wakeup) == ([], T0 + 20 * SECOND)


def test_dwell_does_not_fire_one_ms_before_threshold() -> None:
    journey, _ = advance(None, view(T0), DWELL_20, Limits())

    step = tick(journey, T0 + 20 * SECOND - 1, DWELL_20, Limits())

    assert (step.decisions, step.invitations) == ([], [])


def test_dwell_fires_at_threshold_without_next_event() -> None:
    journey, _ = advance(None, view(T0 + 123), DWELL_20, Limits())

    step = tick(journey, T0 + 20 * SECOND + 123, DWELL_20, Limits())

    assert [i["triggered_at"] for i in step.invitations] == ["2026-12-01T10:00:20.123Z"]


def test_dwell_fires_at_threshold_when_ticked_long_after() -> None:
    journey, _ = advance(None, view(T0), DWELL_20, Limits())

    step = tick(journey, T0 + 10**9, DWELL_20, Limits())

    assert [i["triggered_at"] for i in step.invitations] == [format_instant(T0 + 20 * SECOND)]


def test_dwell_threshold_passed_by_a_later_event_fires_at_threshold_not_at_event() -> None:
    journey, _ = advance(None, view(T0), DWELL_20, Limits())

    _, step = advance(journey, ping(T0 + 25 * SECOND), DWELL_20, Limits())

    assert [i["triggered_at"] for i in step.invitations] == ["2026-12-01T10:00:20.000Z"]


# --- presence -----------------------------------------------------------------------


def test_dwell_after_presence_timeout_without_pings_does_not_fire() -> None:
    out = drive([view(T0)], DWELL_60)

    assert out.decisions == []


def test_no_wakeup_when_threshold_is_after_presence_timeout() -> None:
    _, step = advance(None, view(T0), DWELL_60, Limits())

    assert step.wakeup is None


def test_visitor_is_present_exactly_at_the_presence_timeout() -> None:
    # Reading: "no older than the presence timeout" includes an age equal to it.
    out = drive([view(T0)], DWELL_20, Limits(presence_ms=20 * SECOND))

    assert out.fired() == [("dwell", T0 + 20 * SECOND, "invited")]


def test_configured_presence_timeout_lets_dwell_fire_without_pings() -> None:
    out = drive([view(T0)], DWELL_60, Limits(presence_ms=90 * SECOND))

    assert out.fired() == [("dwell", T0 + 60 * SECOND, "invited")]


def test_pings_keep_visitor_present_until_dwell_fires() -> None:
    out = drive([view(T0), *pings(T0 + 10 * SECOND, T0 + 50 * SECOND)], DWELL_60)

    assert out.fired() == [("dwell", T0 + 60 * SECOND, "invited")]


def test_returning_after_absence_fires_at_return_instant_not_in_gap() -> None:
    # Present until T0+50 s (last ping + 30 s); the threshold T0+60 s falls in the absence.
    events = [view(T0), ping(T0 + 20 * SECOND), ping(T0 + 90 * SECOND)]

    out = drive(events, DWELL_60)

    assert out.fired() == [("dwell", T0 + 90 * SECOND, "invited")]


def test_wakeup_after_a_ping_is_the_threshold_once_it_is_within_presence() -> None:
    journey, _ = advance(None, view(T0), DWELL_60, Limits())

    _, step = advance(journey, ping(T0 + 40 * SECOND), DWELL_60, Limits())

    assert step.wakeup == T0 + 60 * SECOND


def test_page_leave_stops_presence() -> None:
    out = drive([view(T0), leave(T0 + 10 * SECOND)], DWELL_20, Limits(presence_ms=10**7))

    assert out.decisions == []


def test_ping_after_page_leave_does_not_make_visitor_present_again() -> None:
    events = [view(T0), leave(T0 + 5 * SECOND), *pings(T0 + 10 * SECOND, T0 + 40 * SECOND)]

    out = drive(events, DWELL_20)

    assert out.decisions == []


def test_page_view_after_page_leave_makes_visitor_present_again() -> None:
    events = [view(T0), leave(T0 + 5 * SECOND), view(T0 + 60 * SECOND)]

    out = drive(events, DWELL_20)

    assert out.fired() == [("dwell", T0 + 80 * SECOND, "invited")]


def test_page_leave_of_another_page_does_not_stop_presence() -> None:
    out = drive([view(T0), leave(T0 + 5 * SECOND, OTHER)], DWELL_20)

    assert out.fired() == [("dwell", T0 + 20 * SECOND, "invited")]


def test_an_absent_visitor_is_not_invited_at_the_end_of_input() -> None:
    out = drive([view(T0), ping(T0 + 10 * SECOND)], DWELL_60)

    assert out.invitations == []


# --- the current page ---------------------------------------------------------------


def test_new_page_view_resets_dwell() -> None:
    events = [view(T0), ping(T0 + 10 * SECOND), view(T0 + 15 * SECOND, OTHER)]

    out = drive(events, DWELL_20)

    assert [(d["url"], d["triggered_at"]) for d in out.decisions] == [
        (OTHER, format_instant(T0 + 35 * SECOND))
    ]


def test_old_pages_dwell_threshold_does_not_fire_at_new_page_view_instant() -> None:
    # The old page's threshold is exactly the instant of the next page_view: at that
    # instant the current page is the new one, with dwell 0.
    events = [view(T0), ping(T0 + 10 * SECOND), view(T0 + 20 * SECOND, OTHER)]

    out = drive(events, DWELL_20)

    assert out.fired() == [("dwell", T0 + 40 * SECOND, "invited")]


def test_page_rule_does_not_fire_on_the_next_page() -> None:
    pricing_only = rules(
        """
        rules:
          - id: pricing-dwell
            location: {include: ["*/pricing"]}
            trigger: {dwell_seconds: 20}
            message: {text: "Hi"}
        """
    )
    events = [view(T0), ping(T0 + 10 * SECOND), view(T0 + 19 * SECOND, OTHER)]
    events += pings(T0 + 20 * SECOND, T0 + 60 * SECOND, url=OTHER)

    out = drive(events, pricing_only)

    assert out.decisions == []


# --- session time ---------------------------------------------------------------------

SESSION_90 = rules(
    """
    rules:
      - id: session
        trigger: {session_seconds: 90}
        message: {text: "Hi"}
    """
)


def test_session_seconds_count_from_first_page_across_pages() -> None:
    events = [view(T0), ping(T0 + 25 * SECOND), view(T0 + 50 * SECOND, OTHER)]
    events += pings(T0 + 60 * SECOND, T0 + 80 * SECOND, url=OTHER)

    out = drive(events, SESSION_90)

    assert out.fired() == [("session", T0 + 90 * SECOND, "invited")]


def test_session_seconds_count_from_sessions_first_event() -> None:
    # The session opens with an identify; the first page comes 60 s later.
    events = [identify(T0, plan="pro"), view(T0 + 60 * SECOND)]

    out = drive(events, SESSION_90)

    assert out.fired() == [("session", T0 + 90 * SECOND, "invited")]


def test_session_seconds_restart_with_a_new_session() -> None:
    # A 31-minute gap opens a new session at T0+31 min; its 90 s end at T0+31 min 90 s.
    later = T0 + 31 * 60 * SECOND
    events = [view(T0), view(later), *pings(later + 10 * SECOND, later + 80 * SECOND)]

    out = drive(events, SESSION_90)

    assert out.fired() == [("session", later + 90 * SECOND, "invited")]


def test_dwell_and_session_thresholds_fire_at_the_later_of_the_two() -> None:
    both = rules(
        """
        rules:
          - id: both
            trigger: {dwell_seconds: 20, session_seconds: 60}
            message: {text: "Hi"}
        """
    )
    events = [view(T0), view(T0 + 30 * SECOND, OTHER), ping(T0 + 45 * SECOND, OTHER)]

    out = drive(events, both)

    assert out.fired() == [("both", T0 + 60 * SECOND, "invited")]


def test_page_url_in_decision_is_the_full_current_url() -> None:
    url = PAGE + "?plan=pro#faq"

    out = drive([view(T0, url)], DWELL_20)

    assert [d["url"] for d in out.decisions] == [url]


# --- several events at one instant ----------------------------------------------------
# "Every condition is judged at an instant t from the events with event time ≤ t": at t,
# every event stamped t counts (in file order), not only those before it in the file.

FIRST_PAGE = rules(
    """
    rules:
      - id: first-page
        location: {include: ["*/pricing"]}
        trigger: {pages_in_session: 1}
        message: {text: "Hi"}
    """
)


def test_page_leave_at_the_same_instant_as_the_page_view_prevents_firing() -> None:
    out = drive([view(T0), leave(T0)], FIRST_PAGE)

    assert out.fired() == []


def test_redirect_at_the_same_instant_does_not_fire_on_the_page_left() -> None:
    # A client-side redirect: pricing, then about, stamped with the same millisecond.
    out = drive([view(T0), view(T0, OTHER)], FIRST_PAGE)

    assert out.fired() == []


def test_dwell_threshold_and_page_leave_at_one_instant_do_not_fire() -> None:
    # The same question for a time condition, which the engine already answers this way.
    out = drive([view(T0), ping(T0 + 10 * SECOND), leave(T0 + 20 * SECOND)], DWELL_20)

    assert out.decisions == []
