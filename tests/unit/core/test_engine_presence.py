"""Presence set by the events (``presence_s``): trackers that fall silent while the page
is visible, such as Snowplow's, whose page pings need mouse, scroll or key activity."""

from __future__ import annotations

import orjson

from schemas.events import event_to_json
from streams.backtest import Result, read_events, run
from streams.core.dwell import fold
from streams.core.engine import Limits, advance
from streams.core.journey import Journey
from tests.unit.core.engine_helpers import (
    OTHER,
    PAGE,
    SECOND,
    SITE,
    T0,
    check_outputs,
    drive,
    identify,
    leave,
    ping,
    respond,
    rules,
    view,
)

DWELL_45 = rules(
    """
    rules:
      - id: dwell
        trigger: {dwell_seconds: 45}
        message: {text: "Still reading?"}
    """
)
TWO_DWELLS = rules(
    """
    rules:
      - {id: first, trigger: {dwell_seconds: 45}, message: {text: "A"}}
      - {id: second, trigger: {dwell_seconds: 300}, message: {text: "B"}}
    """
)
LIMITS = Limits(min_gap_ms=0)  # presence: the default 30 s


def test_a_still_reader_with_a_presence_window_gets_the_45_s_invitation() -> None:
    # Snowplow: a page view, then nothing while the visitor reads without moving.
    out = drive([view(T0, presence_s=600)], DWELL_45, LIMITS)

    assert out.fired() == [("dwell", T0 + 45 * SECOND, "invited")]


def test_a_still_reader_without_a_presence_window_is_absent_after_30_s() -> None:
    out = drive([view(T0)], DWELL_45, LIMITS)

    assert out.decisions == []


def test_the_window_ends_presence_when_it_runs_out() -> None:
    out = drive([view(T0, presence_s=40)], DWELL_45, LIMITS)

    assert out.decisions == []


def test_the_wakeup_is_the_threshold_within_the_window() -> None:
    _, step = advance(None, view(T0, presence_s=600), DWELL_45, LIMITS)

    assert step.wakeup == T0 + 45 * SECOND


def test_a_page_leave_still_ends_presence_within_the_window() -> None:
    events = [view(T0, presence_s=600), leave(T0 + 10 * SECOND, presence_s=600)]

    out = drive(events, DWELL_45, LIMITS)

    assert out.decisions == []


def test_a_leave_of_another_page_does_not_end_presence() -> None:
    events = [view(T0, presence_s=600), leave(T0 + 10 * SECOND, OTHER, presence_s=600)]

    out = drive(events, DWELL_45, LIMITS)

    assert out.fired() == [("dwell", T0 + 45 * SECOND, "invited")]


def test_events_without_the_field_keep_the_window_the_visitor_set() -> None:
    # The widget's "shown" and a server's identify do not carry the site's policy; they
    # must not cut the still reader's window back to 30 s.
    first = drive([view(T0, presence_s=600)], TWO_DWELLS, LIMITS).invitations[0]
    events = [
        view(T0, presence_s=600),
        respond(T0 + 46 * SECOND, first["invitation_id"], "shown"),
        identify(T0 + 50 * SECOND, plan="pro"),
    ]

    out = drive(events, TWO_DWELLS, LIMITS)

    assert out.fired() == [
        ("first", T0 + 45 * SECOND, "invited"),
        ("second", T0 + 300 * SECOND, "invited"),
    ]


def test_a_later_value_replaces_the_window() -> None:
    events = [view(T0, presence_s=600), ping(T0 + 5 * SECOND, presence_s=10)]

    out = drive(events, DWELL_45, LIMITS)

    assert out.decisions == []


def test_a_new_session_starts_with_the_engines_timeout() -> None:
    events = [view(T0, presence_s=600, session_id="s1"), view(T0 + 60 * SECOND, session_id="s2")]

    out = drive(events, DWELL_45, LIMITS)

    assert out.fired() == [("dwell", T0 + 45 * SECOND, "invited")]  # s1 only
    assert out.journeys["v1"].presence_ms == -1


def test_a_journey_saved_before_presence_windows_still_loads() -> None:
    journey, _ = advance(None, view(T0), DWELL_45, LIMITS)
    data = orjson.loads(orjson.dumps(journey.to_dict()))
    del data["presence_ms"]

    loaded = Journey.from_dict(data)

    assert loaded.presence_ms == -1
    assert loaded.present_until(30 * SECOND) == T0 + 30 * SECOND


def test_the_window_travels_in_the_journey_it_saves() -> None:
    journey, _ = advance(None, view(T0, presence_s=600), DWELL_45, LIMITS)

    loaded = Journey.from_dict(orjson.loads(orjson.dumps(journey.to_dict())))

    assert loaded.present_until(30 * SECOND) == T0 + 600 * SECOND


def test_the_backtest_of_the_recorded_events_gives_the_same_invitations() -> None:
    events = [view(T0, presence_s=600), view(T0 + 1, visitor="v2", presence_s=40)]
    live = drive(events, DWELL_45, LIMITS)
    result = Result()

    run(read_events([event_to_json(e) for e in events], result), DWELL_45, LIMITS, result)

    check_outputs(result.decisions, result.invitations)
    assert result.invitations == live.invitations
    assert [i["visitor_id"] for i in result.invitations] == ["v1"]


def test_dwell_aggregates_count_the_still_reader_within_the_window() -> None:
    events = [view(T0, presence_s=600), ping(T0 + 50 * SECOND), leave(T0 + 55 * SECOND)]
    journey, aggregates = None, {}
    for e in events:
        journey, step = advance(journey, e, DWELL_45, LIMITS)
        fold(step.pages, aggregates)

    assert aggregates[(SITE, PAGE, T0)].dwell_ms == 55_000  # T0 starts a window
