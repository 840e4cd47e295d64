"""Journey triggers in the object form, over literal events (CONTRACT "Trigger")."""

from __future__ import annotations

import orjson

from streams.core.engine import Limits, advance
from streams.core.journey import MAX_PAGES, Journey
from streams.core.rules import CompiledRules
from tests.unit.core.engine_helpers import (
    OTHER,
    PAGE,
    SECOND,
    T0,
    drive,
    pings,
    rules,
    view,
)

PRODUCT = "https://shop.example/products/tea"
SUPPORT = "https://shop.example/support/faq"


def journey_rule(journey: str, priority: int = 0) -> CompiledRules:
    return rules(
        f"""
        rules:
          - id: r
            priority: {priority}
            trigger: {{journey: {journey}}}
            message: {{text: "Hi"}}
        """
    )


PRICING_FAST = journey_rule('{steps: ["*/products/*", "*/pricing"], within: 60}')
PRICING_CLEAN = journey_rule('{steps: ["*/products/*", "*/pricing"], without: ["*/support*"]}')


# --- within -----------------------------------------------------------------------------


def test_within_fires_when_the_steps_take_at_most_t_seconds() -> None:
    out = drive([view(T0, PRODUCT), view(T0 + 60 * SECOND, PAGE)], PRICING_FAST)

    assert out.fired() == [("r", T0 + 60 * SECOND, "invited")]


def test_within_does_not_fire_when_the_steps_take_longer() -> None:
    out = drive([view(T0, PRODUCT), view(T0 + 61 * SECOND, PAGE)], PRICING_FAST)

    assert out.decisions == []


def test_within_counts_from_the_latest_first_step() -> None:
    # The first product view is too long ago; the second one makes the journey fast.
    events = [
        view(T0, PRODUCT),
        view(T0 + 5 * 60 * SECOND, PRODUCT),
        view(T0 + 5 * 60 * SECOND + 30 * SECOND, PAGE),
    ]

    out = drive(events, PRICING_FAST)

    assert out.fired() == [("r", T0 + 5 * 60 * SECOND + 30 * SECOND, "invited")]


def test_within_times_page_views_not_the_time_spent_on_the_last_page() -> None:
    events = [
        view(T0, PRODUCT),
        view(T0 + 10 * SECOND, PAGE),
        *pings(T0 + 20 * SECOND, T0 + 110 * SECOND),
    ]

    out = drive(events, PRICING_FAST)

    assert out.fired() == [("r", T0 + 10 * SECOND, "invited")]


# --- without ----------------------------------------------------------------------------


def test_without_does_not_fire_after_a_page_between_the_steps() -> None:
    events = [view(T0, PRODUCT), view(T0 + 10 * SECOND, SUPPORT), view(T0 + 20 * SECOND, PAGE)]

    out = drive(events, PRICING_CLEAN)

    assert out.decisions == []


def test_without_fires_when_the_page_came_before_the_first_step() -> None:
    events = [view(T0, SUPPORT), view(T0 + 10 * SECOND, PRODUCT), view(T0 + 20 * SECOND, PAGE)]

    out = drive(events, PRICING_CLEAN)

    assert out.fired() == [("r", T0 + 20 * SECOND, "invited")]


def test_without_fires_when_the_steps_are_done_again_after_it() -> None:
    events = [
        view(T0, PRODUCT),
        view(T0 + 10 * SECOND, SUPPORT),
        view(T0 + 20 * SECOND, PRODUCT),
        view(T0 + 30 * SECOND, PAGE),
    ]

    out = drive(events, PRICING_CLEAN)

    assert out.fired() == [("r", T0 + 30 * SECOND, "invited")]


# --- min_views --------------------------------------------------------------------------


def test_min_views_fires_on_the_kth_matching_page_view() -> None:
    three = journey_rule('{min_views: [{glob: "*/products/*", at_least: 3}]}')
    events = [
        view(T0, PRODUCT),
        view(T0 + 10 * SECOND, OTHER),
        view(T0 + 20 * SECOND, PRODUCT + "?color=red"),
        view(T0 + 30 * SECOND, PRODUCT),
    ]

    out = drive(events, three)

    # Fires on the third product view, and again on no other page (per_session: 1).
    assert out.fired() == [("r", T0 + 30 * SECOND, "invited")]


def test_min_views_counts_only_this_session() -> None:
    two = journey_rule('{min_views: [{glob: "*/products/*", at_least: 2}]}')
    events = [view(T0, PRODUCT), view(T0 + 45 * 60 * SECOND, PRODUCT)]

    out = drive(events, two)

    assert out.decisions == []


# --- returned ---------------------------------------------------------------------------


def test_returned_fires_on_coming_back_to_a_page() -> None:
    back = journey_rule("{returned: true}")
    events = [view(T0, PAGE), view(T0 + 10 * SECOND, OTHER), view(T0 + 20 * SECOND, PAGE)]

    out = drive(events, back)

    assert out.fired() == [("r", T0 + 20 * SECOND, "invited")]
    assert out.invitations[0]["url"] == PAGE


def test_returned_ignores_the_query_and_a_reload() -> None:
    back = journey_rule("{returned: true}")
    reload = [view(T0, PAGE), view(T0 + 10 * SECOND, PAGE + "?plan=pro")]
    query = [*reload, view(T0 + 20 * SECOND, OTHER), view(T0 + 30 * SECOND, PAGE + "#faq")]

    assert drive(reload, back).decisions == []
    assert drive(query, back).fired() == [("r", T0 + 30 * SECOND, "invited")]


# --- the list form, and journeys saved by an earlier version ------------------------------


def test_the_list_form_and_steps_alone_fire_alike() -> None:
    events = [view(T0, PRODUCT), view(T0 + 10 * SECOND, OTHER), view(T0 + 20 * SECOND, PAGE)]

    listed = drive(events, journey_rule('["*/products/*", "*/pricing"]'))
    stepped = drive(events, journey_rule('{steps: ["*/products/*", "*/pricing"]}'))

    assert listed.fired() == stepped.fired() == [("r", T0 + 20 * SECOND, "invited")]


def test_page_times_are_kept_with_the_pages_and_bounded_alike() -> None:
    journey = None
    for n in range(MAX_PAGES + 5):
        journey, _ = advance(journey, view(T0 + n * SECOND, f"{PAGE}/{n}"), PRICING_FAST, Limits())
    assert journey is not None

    assert len(journey.pages) == len(journey.page_ms) == MAX_PAGES
    assert journey.page_ms[-1] == (MAX_PAGES + 4) * SECOND  # ms after the session's start


def test_a_journey_saved_before_page_times_decodes_and_is_never_timed() -> None:
    journey, _ = advance(None, view(T0, PRODUCT), PRICING_FAST, Limits())
    saved = journey.to_dict()
    del saved["page_ms"]  # as the previous version wrote it

    restored = Journey.from_dict(orjson.loads(orjson.dumps(saved)))
    restored, step = advance(restored, view(T0 + 10 * SECOND, PAGE), PRICING_FAST, Limits())

    assert restored.page_ms == [-1, 10 * SECOND]
    # The product view's time is unknown, so within cannot hold for it; nothing fires.
    assert step.wakeup is None and restored.pending == []
