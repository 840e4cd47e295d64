"""Time frames in the rule's zone: a present visitor is invited at the opening instant."""

from __future__ import annotations

from schemas.events import ClickEvent
from tests.unit.core.engine_helpers import SECOND, at, drive, pings, rules, view

TOKYO_OFFICE = rules(
    """
    rules:
      - id: office
        timeframe: {timezone: Asia/Tokyo, days: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}
        trigger: {dwell_seconds: 10}
        message: {text: "Hi"}
    """
)
BERLIN_NIGHT = rules(
    """
    rules:
      - id: night
        timeframe: {timezone: Europe/Berlin, hours: "22:00-02:00"}
        trigger: {dwell_seconds: 5}
        message: {text: "Hi"}
    """
)
BERLIN_FRIDAY_NIGHT = rules(
    """
    rules:
      - id: friday-night
        timeframe: {timezone: Europe/Berlin, days: [fri], hours: "22:00-02:00"}
        trigger: {dwell_seconds: 5}
        message: {text: "Hi"}
    """
)


def visit(start: int, seconds: int) -> list[ClickEvent]:
    """A page view at ``start`` kept present by pings every 10 s for ``seconds``."""
    return [view(start), *pings(start + 10 * SECOND, start + seconds * SECOND)]


def test_present_visitor_is_invited_exactly_when_tokyo_office_hours_open() -> None:
    # Monday 08:59:30 in Tokyo is still Sunday in UTC.
    opens = at("2026-12-07T09:00:00+09:00")

    out = drive(visit(opens - 30 * SECOND, 60), TOKYO_OFFICE)

    assert out.fired() == [("office", opens, "invited")]


def test_tokyo_opening_instant_is_written_in_utc() -> None:
    out = drive(visit(at("2026-12-07T08:59:30+09:00"), 60), TOKYO_OFFICE)

    assert [i["triggered_at"] for i in out.invitations] == ["2026-12-07T00:00:00.000Z"]


def test_dwell_threshold_after_tokyo_closing_does_not_fire() -> None:
    out = drive(visit(at("2026-12-01T17:59:55+09:00"), 600), TOKYO_OFFICE)

    assert out.decisions == []


def test_dwell_threshold_just_before_tokyo_closing_fires() -> None:
    start = at("2026-12-01T17:59:49+09:00")

    out = drive(visit(start, 30), TOKYO_OFFICE)

    assert out.fired() == [("office", start + 10 * SECOND, "invited")]


def test_tokyo_saturday_is_closed_while_it_is_friday_in_utc() -> None:
    out = drive(visit(at("2026-12-05T10:00:00+09:00"), 60), TOKYO_OFFICE)

    assert out.decisions == []


def test_present_visitor_is_invited_when_overnight_window_opens_at_22_berlin() -> None:
    opens = at("2026-12-01T22:00:00+01:00")

    out = drive(visit(opens - 20 * SECOND, 60), BERLIN_NIGHT)

    assert out.fired() == [("night", opens, "invited")]


def test_overnight_window_is_open_after_midnight() -> None:
    start = at("2026-12-02T01:30:00+01:00")

    out = drive(visit(start, 20), BERLIN_NIGHT)

    assert out.fired() == [("night", start + 5 * SECOND, "invited")]


def test_overnight_window_closes_at_02_berlin() -> None:
    out = drive(visit(at("2026-12-02T01:59:58+01:00"), 120), BERLIN_NIGHT)

    assert out.decisions == []


def test_overnight_window_is_closed_in_the_afternoon() -> None:
    out = drive(visit(at("2026-12-02T15:00:00+01:00"), 60), BERLIN_NIGHT)

    assert out.decisions == []


def test_overnight_window_after_midnight_belongs_to_the_day_it_started() -> None:
    # Saturday 01:00 is part of Friday night.
    start = at("2026-12-05T01:00:00+01:00")

    out = drive(visit(start, 20), BERLIN_FRIDAY_NIGHT)

    assert out.fired() == [("friday-night", start + 5 * SECOND, "invited")]


def test_overnight_window_of_friday_is_closed_on_saturday_night() -> None:
    out = drive(visit(at("2026-12-05T22:30:00+01:00"), 60), BERLIN_FRIDAY_NIGHT)

    assert out.decisions == []


def test_date_range_is_inclusive_in_local_dates() -> None:
    last_day = rules(
        """
        rules:
          - id: december
            timeframe: {timezone: Asia/Tokyo, start_date: 2026-12-01, end_date: 2026-12-31}
            trigger: {dwell_seconds: 5}
            message: {text: "Hi"}
        """
    )
    # 23:59:50 on Dec 31 in Tokyo: open; 5 s later is still Dec 31 locally.
    start = at("2026-12-31T23:59:50+09:00")

    out = drive(visit(start, 20), last_day)

    assert out.fired() == [("december", start + 5 * SECOND, "invited")]


def test_date_range_end_closes_at_local_midnight() -> None:
    last_day = rules(
        """
        rules:
          - id: december
            timeframe: {timezone: Asia/Tokyo, start_date: 2026-12-01, end_date: 2026-12-31}
            trigger: {dwell_seconds: 5}
            message: {text: "Hi"}
        """
    )
    # Jan 1 00:00:01 in Tokyo is still Dec 31 in UTC.

    out = drive(visit(at("2027-01-01T00:00:01+09:00"), 60), last_day)

    assert out.decisions == []
