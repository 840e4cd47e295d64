"""Dwell aggregates per page and window: literal journeys, windows checked by hand."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.aggregates import PAGE_DWELL, PageDwell
from schemas.events import ClickEvent
from streams.core.dwell import Key, PageWindow, bucket, fold, window_of
from streams.core.engine import Limits, Step, advance
from streams.core.journey import Journey
from tests.unit.core.engine_helpers import (
    MINUTE,
    OTHER,
    PAGE,
    SECOND,
    SITE,
    T0,
    event,
    leave,
    ping,
    view,
)
from tests.unit.core.engine_helpers import rules as compile_rules

NO_RULES = compile_rules("rules: []")
LIMITS = Limits()  # presence 30 s, windows of one minute
W0 = window_of(T0, MINUTE)  # T0 is on a minute boundary: W0 == T0
W1 = W0 + MINUTE


def aggregates(events: Iterable[ClickEvent]) -> dict[Key, PageWindow]:
    """Run the engine over the events (per visitor, in order) and fold what they add."""
    journeys: dict[str, Journey] = {}
    out: dict[Key, PageWindow] = {}
    for e in events:
        journey, step = advance(journeys.get(e.visitor_id), e, NO_RULES, LIMITS)
        journeys[e.visitor_id] = journey
        fold(step.pages, out)
    return out


def test_window_of_is_the_start_of_the_tumbling_window() -> None:
    assert W0 == T0
    assert window_of(T0 + 59_999, MINUTE) == W0
    assert window_of(T0 + 60_000, MINUTE) == W1


def test_a_page_view_with_pings_and_a_leave_counts_its_presence_and_ends() -> None:
    agg = aggregates(
        [view(T0), ping(T0 + 5 * SECOND), ping(T0 + 10 * SECOND), leave(T0 + 12 * SECOND)]
    )
    pricing = agg[(SITE, PAGE, W0)]
    assert (pricing.page_views, pricing.visitors, pricing.dwell_ms) == (1, 1, 12_000)
    assert pricing.ended == 1 and pricing.histogram == {12: 1}
    assert pricing.typical_dwell_ms() == 12_000


def test_presence_is_split_across_the_windows_it_spans() -> None:
    agg = aggregates([view(T0 + 50 * SECOND), ping(T0 + 70 * SECOND), leave(T0 + 75 * SECOND)])
    assert agg[(SITE, PAGE, W0)].dwell_ms == 10_000
    assert agg[(SITE, PAGE, W1)].dwell_ms == 15_000
    # The page view started in W0 and ended in W1, with its whole dwell.
    assert agg[(SITE, PAGE, W0)].page_views == 1 and agg[(SITE, PAGE, W0)].ended == 0
    assert agg[(SITE, PAGE, W1)].ended == 1 and agg[(SITE, PAGE, W1)].histogram == {25: 1}


def test_a_gap_longer_than_the_presence_timeout_counts_only_the_timeout() -> None:
    # Present until 30 s after the view; away from then until the ping at 50 s.
    agg = aggregates([view(T0), ping(T0 + 50 * SECOND), leave(T0 + 55 * SECOND)])
    assert agg[(SITE, PAGE, W0)].dwell_ms == 30_000 + 5_000
    assert agg[(SITE, PAGE, W0)].histogram == {35: 1}


def test_the_next_page_view_ends_the_previous_one_and_counts_its_last_stretch() -> None:
    agg = aggregates([view(T0), ping(T0 + 10 * SECOND), view(T0 + 14 * SECOND, OTHER)])
    pricing, about = agg[(SITE, PAGE, W0)], agg[(SITE, OTHER, W0)]
    assert pricing.dwell_ms == 14_000 and pricing.histogram == {14: 1}
    assert about.page_views == 1 and about.dwell_ms == 0 and about.ended == 0


def test_no_presence_after_a_page_leave() -> None:
    agg = aggregates([view(T0), leave(T0 + 3 * SECOND), ping(T0 + 20 * SECOND)])
    assert agg[(SITE, PAGE, W0)].dwell_ms == 3_000
    assert agg[(SITE, PAGE, W0)].ended == 1


def test_a_leave_from_another_page_does_not_end_the_current_one() -> None:
    agg = aggregates([view(T0), leave(T0 + 3 * SECOND, OTHER), leave(T0 + 8 * SECOND)])
    assert agg[(SITE, PAGE, W0)].ended == 1
    assert agg[(SITE, PAGE, W0)].histogram == {8: 1}


def test_a_new_session_ends_the_page_view_at_the_end_of_presence() -> None:
    later = T0 + 2 * 3600 * SECOND  # beyond the 30-minute session timeout
    agg = aggregates([view(T0), ping(T0 + 10 * SECOND), ping(later)])
    assert agg[(SITE, PAGE, W0)].dwell_ms == 40_000  # until 30 s after the last ping
    assert agg[(SITE, PAGE, W0)].histogram == {40: 1}


def test_visitors_are_distinct_per_page_and_window() -> None:
    events = [
        view(T0),
        view(T0 + 10 * SECOND, OTHER),
        view(T0 + 20 * SECOND),  # the same visitor on the same page in W0 again
        event("page_view", T0 + 30 * SECOND, PAGE, visitor="v2"),
        view(T0 + 70 * SECOND),  # a new window
    ]
    agg = aggregates(events)
    assert (agg[(SITE, PAGE, W0)].page_views, agg[(SITE, PAGE, W0)].visitors) == (3, 2)
    assert (agg[(SITE, PAGE, W1)].page_views, agg[(SITE, PAGE, W1)].visitors) == (1, 1)


def test_a_duplicate_event_adds_nothing() -> None:
    first = ping(T0 + 10 * SECOND)
    agg = aggregates([view(T0), first, first, leave(T0 + 12 * SECOND)])
    assert agg[(SITE, PAGE, W0)].dwell_ms == 12_000


def test_without_dwell_the_engine_decides_the_same_and_adds_nothing() -> None:
    # The backtest publishes no aggregates and passes dwell=False: rules never read them.
    rules = compile_rules(
        """
        rules:
          - {id: dwell, trigger: {dwell_seconds: 20}, message: {text: "A"}}
          - {id: later, trigger: {dwell_seconds: 40}, frequency: {per_session: null},
             message: {text: "B"}}
        """
    )
    events = [view(T0), ping(T0 + 25 * SECOND), leave(T0 + 30 * SECOND), view(T0 + 40 * SECOND)]
    events += [ping(T0 + 90 * SECOND, OTHER), view(T0 + 95 * SECOND, OTHER)]
    steps: dict[bool, list[Step]] = {}
    for dwell in (True, False):
        journey: Journey | None = None
        steps[dwell] = []
        for e in events:
            journey, step = advance(journey, e, rules, LIMITS, dwell=dwell)
            steps[dwell].append(step)
    assert [s.pages for s in steps[False]] == [[]] * len(events)
    assert any(s.pages for s in steps[True]) and any(s.decisions for s in steps[True])
    assert [s[:3] for s in steps[False]] == [s[:3] for s in steps[True]]


def test_partials_merge_to_the_whole() -> None:
    events = [view(T0), ping(T0 + 5 * SECOND), view(T0 + 9 * SECOND, OTHER)]
    events += [event("page_view", T0 + s * SECOND, PAGE, visitor="v2") for s in (1, 40)]
    whole = aggregates(events)
    # The same contributions folded in two batches, then merged.
    journeys: dict[str, Journey] = {}
    halves: list[dict[Key, PageWindow]] = [{}, {}]
    for i, e in enumerate(events):
        journey, step = advance(journeys.get(e.visitor_id), e, NO_RULES, LIMITS)
        journeys[e.visitor_id] = journey
        fold(step.pages, halves[i % 2])
    merged = halves[0]
    for key, part in halves[1].items():
        merged.setdefault(key, PageWindow()).merge(part)
    as_records = {k: v.to_record(*k, MINUTE) for k, v in merged.items()}
    assert as_records == {k: v.to_record(*k, MINUTE) for k, v in whole.items()}


def test_typical_dwell_is_the_median_bucket() -> None:
    agg = PageWindow()
    agg.histogram, agg.ended = {3: 1, 10: 1, 250: 3}, 5
    assert agg.typical_dwell_ms() == 250_000
    agg.histogram, agg.ended = {3: 2, 10: 1, 250: 1}, 4
    assert agg.typical_dwell_ms() == 3_000
    assert PageWindow().typical_dwell_ms() is None


def test_buckets_are_seconds_below_100_and_two_digits_above() -> None:
    assert [bucket(ms) for ms in (0, 999, 1_000, 99_999)] == [0, 0, 1, 99]
    assert [bucket(ms) for ms in (100_000, 123_456, 1_234_567)] == [100, 120, 1200]


def test_the_record_round_trips() -> None:
    agg = aggregates([view(T0), ping(T0 + 5 * SECOND), leave(T0 + 7 * SECOND)])[(SITE, PAGE, W0)]
    record = agg.to_record(SITE, PAGE, W0, MINUTE)
    assert record["window_start"] == "2026-12-01T10:00:00.000Z"
    assert record["window_end"] == "2026-12-01T10:01:00.000Z"
    assert record["histogram"] == {"7": 1} and record["typical_dwell_ms"] == 7_000
    again = PageWindow.from_record(record).to_record(SITE, PAGE, W0, MINUTE)
    assert again == record
    assert PAGE_DWELL.validate_python(record).typical_dwell_ms == 7_000


def test_the_record_is_the_contracts_page_dwell() -> None:
    # PageDwell (schemas/aggregates.py) is the record's one definition: to_record writes
    # exactly its fields, with the types it reads back unchanged.
    agg = aggregates([view(T0), ping(T0 + 5 * SECOND), view(T0 + 130 * SECOND, OTHER)])
    for key, window in agg.items():
        record = window.to_record(*key, MINUTE)
        assert list(record) == list(PageDwell.model_fields)
        assert PAGE_DWELL.validate_python(record).model_dump() == record
    # from_record reads the model's fields, whatever else a newer worker adds.
    model = PageDwell.model_validate({**record, "added_later": 1})
    assert PageWindow.from_record(model.model_dump()).to_record(*key, MINUTE) == record
