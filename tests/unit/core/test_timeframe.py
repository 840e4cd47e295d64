"""Timeframe windows: open and closed at exact instants, across midnight and DST."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rules import DAYS, Timeframe
from streams.core.timeframe import HORIZON_DAYS, Window, _transitions

MS = 1
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def at(zone: str, y: int, m: int, d: int, hh: int = 0, mm: int = 0, *, fold: int = 0) -> int:
    """Epoch ms of a local wall-clock time in ``zone``."""
    local = datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(zone), fold=fold)
    return int(local.timestamp()) * 1000


def window(**fields: Any) -> Window:
    return Window.of(Timeframe.model_validate(fields))


TOKYO_OFFICE = {"timezone": "Asia/Tokyo", "days": list(DAYS[:5]), "hours": "09:00-18:00"}


def test_business_hours_open_at_start_and_close_at_end_exactly() -> None:
    w = window(**TOKYO_OFFICE)
    opens, closes = at("Asia/Tokyo", 2026, 12, 1, 9, 0), at("Asia/Tokyo", 2026, 12, 1, 18, 0)
    assert not w.is_open(opens - MS)
    assert w.is_open(opens)
    assert w.is_open(closes - MS)
    assert not w.is_open(closes)


def test_next_open_before_hours_is_the_opening_instant() -> None:
    w = window(**TOKYO_OFFICE)
    assert w.next_open(at("Asia/Tokyo", 2026, 12, 1, 7, 13)) == at("Asia/Tokyo", 2026, 12, 1, 9, 0)


def test_next_open_when_open_is_the_instant_itself() -> None:
    t = at("Asia/Tokyo", 2026, 12, 1, 12, 0) + 123
    assert window(**TOKYO_OFFICE).next_open(t) == t


def test_after_hours_next_open_is_the_next_morning() -> None:
    w = window(**TOKYO_OFFICE)
    assert w.next_open(at("Asia/Tokyo", 2026, 12, 1, 18, 0)) == at("Asia/Tokyo", 2026, 12, 2, 9, 0)


def test_weekend_is_skipped() -> None:
    w = window(**TOKYO_OFFICE)
    saturday_noon = at("Asia/Tokyo", 2026, 12, 5, 12, 0)
    assert not w.is_open(saturday_noon)
    friday_close = at("Asia/Tokyo", 2026, 12, 4, 18, 0)
    assert w.next_open(friday_close) == at("Asia/Tokyo", 2026, 12, 7, 9, 0)  # Monday


BERLIN_FRIDAY_NIGHT = {"timezone": "Europe/Berlin", "days": ["fri"], "hours": "22:00-02:00"}


def test_overnight_window_spans_midnight_and_belongs_to_the_day_it_starts() -> None:
    w = window(**BERLIN_FRIDAY_NIGHT)
    # Friday 2026-06-05 22:00 to Saturday 02:00.
    assert not w.is_open(at("Europe/Berlin", 2026, 6, 5, 22, 0) - MS)
    assert w.is_open(at("Europe/Berlin", 2026, 6, 5, 22, 0))
    assert w.is_open(at("Europe/Berlin", 2026, 6, 6, 0, 0))
    assert w.is_open(at("Europe/Berlin", 2026, 6, 6, 2, 0) - MS)
    assert not w.is_open(at("Europe/Berlin", 2026, 6, 6, 2, 0))
    # Friday 01:00 is the end of Thursday's night, and Saturday 22:00 starts Saturday's.
    assert not w.is_open(at("Europe/Berlin", 2026, 6, 5, 1, 0))
    assert not w.is_open(at("Europe/Berlin", 2026, 6, 6, 22, 0))


def test_overnight_next_open_is_next_friday_night() -> None:
    w = window(**BERLIN_FRIDAY_NIGHT)
    saturday_close = at("Europe/Berlin", 2026, 6, 6, 2, 0)
    assert w.next_open(saturday_close) == at("Europe/Berlin", 2026, 6, 12, 22, 0)


def test_overnight_after_midnight_counts_for_the_start_date() -> None:
    w = window(**BERLIN_FRIDAY_NIGHT, start_date="2026-06-05", end_date="2026-06-05")
    assert not w.is_open(at("Europe/Berlin", 2026, 6, 5, 1, 0))  # Thursday's night
    assert w.is_open(at("Europe/Berlin", 2026, 6, 6, 1, 0))  # Friday's night, on Saturday
    assert w.next_open(at("Europe/Berlin", 2026, 6, 6, 2, 0)) is None


def test_start_and_end_dates_are_inclusive_local_dates() -> None:
    w = window(timezone="UTC", start_date="2026-12-01", end_date="2026-12-31")
    first, after = at("UTC", 2026, 12, 1, 0, 0), at("UTC", 2027, 1, 1, 0, 0)
    assert not w.is_open(first - MS)
    assert w.next_open(first - 5 * DAY) == first
    assert w.is_open(first)
    assert w.is_open(after - MS)
    assert not w.is_open(after)
    assert w.next_open(after) is None


def test_dates_are_local_not_utc() -> None:
    w = window(timezone="Asia/Tokyo", start_date="2026-12-01")
    # 2026-11-30 15:00 UTC is already December 1st in Tokyo.
    assert w.is_open(at("UTC", 2026, 11, 30, 15, 0))
    assert not w.is_open(at("UTC", 2026, 11, 30, 15, 0) - MS)


def test_end_of_hours_at_24_00_is_midnight() -> None:
    w = window(timezone="UTC", hours="21:00-24:00")
    assert w.is_open(at("UTC", 2026, 5, 1, 0, 0) - MS)
    assert not w.is_open(at("UTC", 2026, 5, 1, 0, 0))


def test_opening_in_a_dst_gap_opens_right_after_the_gap() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens.
    w = window(timezone="America/New_York", hours="02:30-05:00")
    after_gap = at("UTC", 2026, 3, 8, 7, 0)  # 03:00 EDT
    assert w.next_open(at("America/New_York", 2026, 3, 8, 0, 0)) == after_gap
    assert not w.is_open(after_gap - MS)
    assert w.is_open(after_gap)


def test_hours_entirely_in_a_dst_gap_do_not_open_that_day() -> None:
    w = window(timezone="America/New_York", hours="02:00-02:30")
    t = at("America/New_York", 2026, 3, 8, 0, 0)
    assert w.next_open(t) == at("America/New_York", 2026, 3, 9, 2, 0)


def test_ambiguous_opening_uses_the_first_occurrence() -> None:
    # New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    w = window(timezone="America/New_York", hours="01:30-03:00")
    first_0130 = at("UTC", 2026, 11, 1, 5, 30)  # 01:30 EDT
    assert at("America/New_York", 2026, 11, 1, 1, 30, fold=0) == first_0130
    assert w.next_open(at("America/New_York", 2026, 11, 1, 0, 0)) == first_0130


def test_repeated_wall_clock_hour_is_open_both_times() -> None:
    w = window(timezone="America/New_York", hours="01:00-01:30")
    first_0140 = at("America/New_York", 2026, 11, 1, 1, 40, fold=0)
    assert not w.is_open(first_0140)
    second_0100 = at("America/New_York", 2026, 11, 1, 1, 0, fold=1)
    assert w.next_open(first_0140) == second_0100
    assert second_0100 - first_0140 == 20 * MINUTE


def test_no_timeframe_is_always_open() -> None:
    w = Window.of(None)
    assert w.always
    assert w.is_open(0)
    assert w.next_open(1_700_000_000_123) == 1_700_000_000_123


def test_timeframe_without_limits_is_open_all_day_every_day() -> None:
    w = window(timezone="Europe/Berlin")
    assert w.always
    for hour in range(0, 24 * 7, 5):
        assert w.is_open(at("UTC", 2026, 3, 23) + hour * HOUR)


def test_next_open_beyond_the_horizon_is_none() -> None:
    t = at("UTC", 2026, 1, 1, 0, 0)
    far = (date(2026, 1, 1) + timedelta(days=HORIZON_DAYS + 1)).isoformat()
    assert window(start_date=far).next_open(t) is None
    near = (date(2026, 1, 1) + timedelta(days=HORIZON_DAYS - 1)).isoformat()
    assert window(start_date=near).next_open(t) == t + (HORIZON_DAYS - 1) * DAY


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "Window(always)"),
        ({"days": ["sat", "sun"]}, "Window('UTC', sat,sun, 00:00-24:00)"),
        (TOKYO_OFFICE, "Window('Asia/Tokyo', mon,tue,wed,thu,fri, 09:00-18:00)"),
        ({"start_date": "2026-12-01"}, "Window('UTC', 2026-12-01.., "),
    ],
)
def test_repr_reads_like_the_timeframe(fields: dict[str, Any], expected: str) -> None:
    assert repr(window(**fields)).startswith(expected)


# --- Properties ---------------------------------------------------------------------

ZONES = [
    "UTC",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Apia",  # skipped 2011-12-30 entirely
]
T_MIN, T_MAX = at("UTC", 2010, 1, 1, 0, 0), at("UTC", 2030, 1, 1, 0, 0)


def test_zone_transitions_are_found_to_the_second() -> None:
    new_york = ZoneInfo("America/New_York")
    assert [t * 1000 for t in _transitions(new_york, 2026)] == [
        at("UTC", 2026, 3, 8, 7, 0),  # 02:00 EST -> 03:00 EDT
        at("UTC", 2026, 11, 1, 6, 0),  # 02:00 EDT -> 01:00 EST
    ]
    assert _transitions(ZoneInfo("Asia/Tokyo"), 2026) == ()


# Instants near a DST change, where the arithmetic is easiest to get wrong.
NEAR_TRANSITIONS = st.sampled_from(
    sorted(t * 1000 for zone in ZONES for t in _transitions(ZoneInfo(zone), 2026))
).flatmap(lambda t: st.integers(t - 2 * DAY, t + 2 * DAY))
INSTANTS = st.integers(T_MIN, T_MAX) | NEAR_TRANSITIONS


@st.composite
def timeframes(draw: st.DrawFn) -> Timeframe:
    fields: dict[str, Any] = {"timezone": draw(st.sampled_from(ZONES))}
    if draw(st.booleans()):
        fields["days"] = draw(st.sets(st.sampled_from(DAYS), min_size=1))
    if draw(st.booleans()):
        start, end = draw(st.integers(0, 1439)), draw(st.integers(1, 1440))
        if start != end:
            fields["hours"] = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    if draw(st.booleans()):
        first = draw(st.dates(date(2010, 1, 1), date(2030, 12, 31)))
        fields["start_date"] = first
        fields["end_date"] = first + timedelta(days=draw(st.integers(0, 60)))
    return Timeframe.model_validate(fields)


def reference_is_open(tf: Timeframe, t_ms: int) -> bool:
    """The timeframe's meaning, written the slow and obvious way."""
    local = datetime.fromtimestamp(t_ms / 1000, tf.zone)
    minute = local.hour * 60 + local.minute
    day = local.date()
    if tf.hours is not None and tf.hours[0] > tf.hours[1] and minute < tf.hours[1]:
        day -= timedelta(days=1)  # after midnight in an overnight window
    return (
        tf.in_hours(minute)
        and day.weekday() in tf.weekdays
        and (tf.start_date is None or tf.start_date <= day)
        and (tf.end_date is None or day <= tf.end_date)
    )


@settings(max_examples=300, deadline=None)
@given(timeframes(), INSTANTS)
def test_is_open_agrees_with_the_obvious_definition(tf: Timeframe, t: int) -> None:
    w = Window.of(tf)
    for probe in (t, t - t % MINUTE, t + DAY // 3, t + 3 * DAY):
        assert w.is_open(probe) == reference_is_open(tf, probe)


@settings(max_examples=300, deadline=None)
@given(timeframes(), INSTANTS)
def test_next_open_is_open_and_nothing_before_it_is(tf: Timeframe, t: int) -> None:
    w = Window.of(tf)
    n = w.next_open(t)
    end = n if n is not None else t + HORIZON_DAYS * DAY
    if n is not None:
        assert n >= t
        assert w.is_open(n)
        assert reference_is_open(tf, n)
        if n > t:
            assert not w.is_open(n - 1)
    # Every minute of the last day before it, and a sparse sample of the rest.
    step = max(MINUTE, (end - t) // 2000)
    probes = [*range(t, end, step), *range(max(t, end - DAY), end, MINUTE)]
    assert not any(reference_is_open(tf, p) for p in probes)
