"""Trigger, location and audience conditions (CONTRACT "Rule", "The visitor profile")."""

from __future__ import annotations

from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from tests.unit.core.engine_helpers import (
    MINUTE,
    OTHER,
    PAGE,
    SECOND,
    T0,
    custom,
    drive,
    exit_intent,
    identify,
    rules,
    scroll,
    view,
)

PRODUCT = "https://shop.example/products/tea"
CART = "https://shop.example/cart"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def one_rule(body: str) -> str:
    """A rules file with one rule ``r`` whose other keys are ``body`` (YAML flow lines)."""
    lines = "\n".join("        " + line for line in body.strip().splitlines())
    return f"""
    rules:
      - id: r
        message: {{text: "Hi"}}
{lines}
    """


def rule(body: str) -> CompiledRules:
    return rules(one_rule(body))


# --- pages_in_session ---------------------------------------------------------------


def test_pages_in_session_fires_at_the_third_page_view() -> None:
    three = rule("trigger: {pages_in_session: 3}")
    events = [view(T0), view(T0 + 10 * SECOND, OTHER), view(T0 + 20 * SECOND, CART)]

    out = drive(events, three)

    assert out.fired() == [("r", T0 + 20 * SECOND, "invited")]


def test_pages_in_session_do_not_count_the_previous_session() -> None:
    three = rule("trigger: {pages_in_session: 3}")
    events = [view(T0), view(T0 + 10 * SECOND, OTHER), view(T0 + 45 * MINUTE, CART)]

    out = drive(events, three)

    assert out.decisions == []


# --- journey --------------------------------------------------------------------------

JOURNEY = 'trigger: {journey: ["*/products/*", "*/pricing"]}'


def test_journey_in_order_with_gaps_fires_on_the_last_step() -> None:
    events = [view(T0, PRODUCT), view(T0 + 10 * SECOND, OTHER), view(T0 + 20 * SECOND, PAGE)]

    out = drive(events, rule(JOURNEY))

    assert out.fired() == [("r", T0 + 20 * SECOND, "invited")]


def test_journey_in_the_wrong_order_does_not_fire() -> None:
    events = [view(T0, PAGE), view(T0 + 10 * SECOND, PRODUCT), view(T0 + 20 * SECOND, OTHER)]

    out = drive(events, rule(JOURNEY))

    assert out.decisions == []


def test_journey_matches_pages_without_query() -> None:
    events = [view(T0, PRODUCT + "?ref=home"), view(T0 + 10 * SECOND, PAGE + "?plan=pro#faq")]

    out = drive(events, rule(JOURNEY))

    assert out.fired() == [("r", T0 + 10 * SECOND, "invited")]


# --- scroll_pct -----------------------------------------------------------------------


def test_scroll_pct_fires_when_the_page_is_scrolled_far_enough() -> None:
    events = [view(T0), scroll(T0 + 5 * SECOND, 30), scroll(T0 + 8 * SECOND, 60)]

    out = drive(events, rule("trigger: {scroll_pct: 50}"))

    assert out.fired() == [("r", T0 + 8 * SECOND, "invited")]


def test_scroll_pct_holds_at_exactly_the_threshold() -> None:
    out = drive([view(T0), scroll(T0 + 5 * SECOND, 50)], rule("trigger: {scroll_pct: 50}"))

    assert out.fired() == [("r", T0 + 5 * SECOND, "invited")]


def test_scroll_pct_is_not_carried_to_the_next_page() -> None:
    body = "location: {include: ['*/about']}\ntrigger: {scroll_pct: 50}"
    events = [view(T0), scroll(T0 + 5 * SECOND, 90), view(T0 + 8 * SECOND, OTHER)]

    out = drive(events, rule(body))

    assert out.decisions == []


def test_scroll_of_another_page_does_not_count() -> None:
    events = [view(T0), scroll(T0 + 5 * SECOND, 90, OTHER)]

    out = drive(events, rule("trigger: {scroll_pct: 50}"))

    assert out.decisions == []


# --- event: exit_intent and custom ----------------------------------------------------


def test_exit_intent_fires_at_its_instant() -> None:
    events = [view(T0), exit_intent(T0 + 7 * SECOND)]

    out = drive(events, rule("trigger: {event: exit_intent}"))

    assert out.fired() == [("r", T0 + 7 * SECOND, "invited")]


def test_exit_intent_is_not_carried_to_the_next_page() -> None:
    body = "location: {include: ['*/about']}\ntrigger: {event: exit_intent}"
    events = [view(T0), exit_intent(T0 + 5 * SECOND), view(T0 + 8 * SECOND, OTHER)]

    out = drive(events, rule(body))

    assert out.decisions == []


def test_custom_event_fires_by_name() -> None:
    events = [view(T0), custom(T0 + 3 * SECOND, "chat-open"), custom(T0 + 5 * SECOND, "coupon")]

    out = drive(events, rule("trigger: {event: coupon}"))

    assert out.fired() == [("r", T0 + 5 * SECOND, "invited")]


def test_custom_event_without_url_counts_for_the_current_page() -> None:
    events = [view(T0), custom(T0 + 5 * SECOND, "coupon", None)]

    out = drive(events, rule("trigger: {event: coupon}"))

    assert out.fired() == [("r", T0 + 5 * SECOND, "invited")]


def test_custom_event_is_not_carried_to_the_next_page() -> None:
    body = "location: {include: ['*/about']}\ntrigger: {event: coupon}"
    events = [view(T0), custom(T0 + 5 * SECOND, "coupon"), view(T0 + 8 * SECOND, OTHER)]

    out = drive(events, rule(body))

    assert out.decisions == []


def test_event_and_dwell_together_fire_at_dwell_threshold() -> None:
    events = [view(T0), exit_intent(T0 + 5 * SECOND)]

    out = drive(events, rule("trigger: {event: exit_intent, dwell_seconds: 20}"))

    assert out.fired() == [("r", T0 + 20 * SECOND, "invited")]


# --- location -------------------------------------------------------------------------


def test_include_glob_ignores_query_and_fragment() -> None:
    body = "location: {include: ['*/pricing']}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, PAGE + "?plan=pro#faq")], rule(body))

    assert out.fired() == [("r", T0, "invited")]


def test_include_glob_ignores_a_fragment_holding_a_question_mark() -> None:
    body = "location: {include: ['*/pricing']}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, PAGE + "#faq?q=1")], rule(body))

    assert out.fired() == [("r", T0, "invited")]


def test_include_glob_star_spans_slashes() -> None:
    body = "location: {include: ['https://shop.example/*']}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, "https://shop.example/a/b/c")], rule(body))

    assert out.fired() == [("r", T0, "invited")]


def test_include_glob_does_not_see_the_query() -> None:
    body = "location: {include: ['*utm_source=*']}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, PAGE + "?utm_source=news")], rule(body))

    assert out.decisions == []


def test_exclude_glob_ignores_query_and_fragment() -> None:
    body = (
        "location: {include: ['https://shop.example/*'], exclude: ['*/thank-you']}\n"
        "trigger: {pages_in_session: 1}"
    )

    out = drive([view(T0, "https://shop.example/thank-you?order=7#done")], rule(body))

    assert out.decisions == []


def test_page_outside_include_does_not_fire() -> None:
    body = "location: {include: ['https://shop.example/pricing*']}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, OTHER)], rule(body))

    assert out.decisions == []


# --- audience: attributes -------------------------------------------------------------


def test_audience_equality_holds_once_identify_sends_the_attribute() -> None:
    body = "audience: {authenticated: true}\ntrigger: {pages_in_session: 1}"
    events = [view(T0), identify(T0 + 4 * SECOND, authenticated=True)]

    out = drive(events, rule(body))

    assert out.fired() == [("r", T0 + 4 * SECOND, "invited")]


def test_audience_missing_attribute_does_not_fire() -> None:
    body = "audience: {authenticated: true}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0)], rule(body))

    assert out.decisions == []


def test_audience_operators_all_must_hold() -> None:
    body = (
        "audience: {country: {in: [JP, US]}, plan: {not_in: [enterprise]}, age: {gte: 18}}\n"
        "trigger: {pages_in_session: 1}"
    )
    events = [view(T0, attributes={"country": "JP", "plan": "pro", "age": 30})]

    out = drive(events, rule(body))

    assert out.fired() == [("r", T0, "invited")]


def test_audience_not_in_excludes_listed_value() -> None:
    body = "audience: {plan: {not_in: [enterprise]}}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, attributes={"plan": "enterprise"})], rule(body))

    assert out.decisions == []


def test_latest_attribute_value_wins() -> None:
    body = "audience: {plan: free}\ntrigger: {dwell_seconds: 20}"
    events = [view(T0, attributes={"plan": "free"}), identify(T0 + 5 * SECOND, plan="pro")]

    out = drive(events, rule(body))

    assert out.decisions == []


# --- audience: derived attributes -----------------------------------------------------

RETURNING = "audience: {visits: {gte: 2}}\ntrigger: {pages_in_session: 1}"


def test_visits_count_a_new_session_after_thirty_minutes_without_events() -> None:
    events = [view(T0), view(T0 + 31 * MINUTE)]

    out = drive(events, rule(RETURNING))

    assert out.fired() == [("r", T0 + 31 * MINUTE, "invited")]


def test_visits_do_not_count_a_gap_shorter_than_the_session_timeout() -> None:
    events = [view(T0), view(T0 + 29 * MINUTE)]

    out = drive(events, rule(RETURNING))

    assert out.decisions == []


def test_visits_follow_the_configured_session_timeout() -> None:
    events = [view(T0), view(T0 + 6 * MINUTE)]

    out = drive(events, rule(RETURNING), Limits(session_gap_ms=5 * MINUTE))

    assert out.fired() == [("r", T0 + 6 * MINUTE, "invited")]


def test_visits_count_a_new_session_when_session_id_changes() -> None:
    events = [view(T0, session_id="s1"), view(T0 + 2 * MINUTE, session_id="s2")]

    out = drive(events, rule(RETURNING))

    assert [(d["session_id"], d["outcome"]) for d in out.decisions] == [("s2", "invited")]


def test_same_session_id_after_a_long_gap_is_the_same_session() -> None:
    # Reading: with a session_id the site says which session it is; the gap does not split it.
    events = [view(T0, session_id="s1"), view(T0 + 40 * MINUTE, session_id="s1")]

    out = drive(events, rule(RETURNING))

    assert out.decisions == []


def test_device_mobile_from_an_iphone_user_agent() -> None:
    body = "audience: {device: mobile}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, user_agent=IPHONE)], rule(body))

    assert out.fired() == [("r", T0, "invited")]


def test_device_desktop_from_a_desktop_user_agent_is_not_mobile() -> None:
    body = "audience: {device: mobile}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, user_agent=DESKTOP)], rule(body))

    assert out.decisions == []


def test_utm_source_comes_from_the_sessions_landing_url() -> None:
    body = "audience: {utm_source: newsletter}\ntrigger: {pages_in_session: 2}"
    events = [view(T0, PAGE + "?utm_source=newsletter&utm_medium=email"), view(T0 + 9 * SECOND)]

    out = drive(events, rule(body))

    assert out.fired() == [("r", T0 + 9 * SECOND, "invited")]


def test_utm_source_on_a_later_page_is_not_the_landing_one() -> None:
    body = "audience: {utm_source: newsletter}\ntrigger: {pages_in_session: 2}"
    events = [view(T0), view(T0 + 9 * SECOND, PAGE + "?utm_source=newsletter")]

    out = drive(events, rule(body))

    assert out.decisions == []


def test_referrer_host_comes_from_the_landing_referrer() -> None:
    body = "audience: {referrer_host: www.google.com}\ntrigger: {pages_in_session: 1}"

    out = drive([view(T0, referrer="https://www.google.com/search?q=tea")], rule(body))

    assert out.fired() == [("r", T0, "invited")]
