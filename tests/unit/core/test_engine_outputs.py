"""What an invitation and a decision carry (CONTRACT "Invitation"), duplicates, enabled."""

from __future__ import annotations

from schemas.invitations import DECISION, INVITATION
from streams.core.engine import Limits
from tests.unit.core.engine_helpers import (
    OTHER,
    PAGE,
    SECOND,
    SITE,
    T0,
    VISITOR,
    drive,
    identify,
    ping,
    pings,
    rules,
    scroll,
    view,
)

PRODUCT = "https://shop.example/products/tea"
GREETING = rules(
    """
    rules:
      - id: greet
        priority: 7
        audience: {plan: {exists: true}}
        trigger: {dwell_seconds: 20}
        message:
          text: "Hi {first_name|there}, any questions about our plans?"
          locales: {ja: "{first_name|}さん、プランについてご質問はありますか？"}
        queue: sales
    """
)


def greeted(**attributes: object) -> dict[str, object]:
    """The one invitation for a visitor with ``attributes`` who stays 20 s on the page."""
    out = drive([view(T0, attributes={"plan": "pro", **attributes})], GREETING)
    assert len(out.invitations) == 1
    return out.invitations[0]


# --- message ----------------------------------------------------------------------------


def test_message_falls_back_to_the_placeholder_default() -> None:
    assert greeted()["message"] == "Hi there, any questions about our plans?"


def test_message_uses_the_visitors_attribute() -> None:
    assert greeted(first_name="Aiko")["message"] == "Hi Aiko, any questions about our plans?"


def test_message_locale_chosen_from_language_primary_subtag() -> None:
    invitation = greeted(first_name="Aiko", language="ja-JP")

    assert (invitation["locale"], invitation["message"]) == (
        "ja",
        "Aikoさん、プランについてご質問はありますか？",
    )


def test_locale_is_none_when_no_translation_matches() -> None:
    invitation = greeted(language="fr-FR")

    assert (invitation["locale"], invitation["message"]) == (
        None,
        "Hi there, any questions about our plans?",
    )


def test_a_language_that_is_not_text_gets_the_default_message() -> None:
    # Attributes are any JSON; a visitor sending "language": 7 must not stop the engine.
    invitation = greeted(language=7)

    assert (invitation["locale"], invitation["message"]) == (
        None,
        "Hi there, any questions about our plans?",
    )


def test_locale_is_none_without_a_language() -> None:
    assert greeted()["locale"] is None


def test_message_uses_attributes_sent_after_the_page_view() -> None:
    events = [view(T0, attributes={"plan": "pro"}), identify(T0 + 5 * SECOND, first_name="Ken")]

    out = drive(events, GREETING)

    assert [i["message"] for i in out.invitations] == ["Hi Ken, any questions about our plans?"]


# --- invitation fields ----------------------------------------------------------------


def test_invitation_carries_the_identity_fields() -> None:
    invitation = greeted()

    assert {
        k: invitation[k] for k in ("visitor_id", "site_id", "rule_id", "queue", "priority")
    } == {
        "visitor_id": VISITOR,
        "site_id": SITE,
        "rule_id": "greet",
        "queue": "sales",
        "priority": 7,
    }


def test_invitation_url_is_the_page_on_which_it_fired() -> None:
    assert greeted()["url"] == PAGE


def test_triggered_at_is_rfc3339_utc_with_milliseconds() -> None:
    assert greeted()["triggered_at"] == "2026-12-01T10:00:20.000Z"


def test_expires_at_is_triggered_at_plus_60_seconds_by_default() -> None:
    assert greeted()["expires_at"] == "2026-12-01T10:01:20.000Z"


def test_expires_at_follows_the_configured_ttl() -> None:
    out = drive([view(T0, attributes={"plan": "pro"})], GREETING, Limits(ttl_ms=5 * 60 * SECOND))

    assert [i["expires_at"] for i in out.invitations] == ["2026-12-01T10:05:20.000Z"]


def test_context_says_why_it_fired() -> None:
    events = [
        view(T0 - 30 * SECOND, PRODUCT + "?ref=home"),
        view(T0, PAGE + "?plan=pro#faq", attributes={"plan": "pro"}),
        scroll(T0 + 3 * SECOND, 40),
    ]

    context = drive(events, GREETING).invitations[0]["context"]

    assert (
        context["dwell_seconds"],
        context["pages_in_session"],
        context["journey"],
        context["audience"],
    ) == (20, 2, [PRODUCT, PAGE], {"plan": "pro"})


def test_invitation_id_is_the_same_in_two_runs_of_the_same_input() -> None:
    events = [view(T0, attributes={"plan": "pro"}), *pings(T0 + 10 * SECOND, T0 + 30 * SECOND)]

    first, second = drive(events, GREETING), drive(events, GREETING)

    assert [i["invitation_id"] for i in first.invitations] == [
        i["invitation_id"] for i in second.invitations
    ]


def test_invitation_id_differs_for_another_visitor() -> None:
    mine = drive([view(T0, attributes={"plan": "pro"})], GREETING).invitations
    theirs = drive([view(T0, attributes={"plan": "pro"}, visitor="v2")], GREETING).invitations

    assert mine[0]["invitation_id"] != theirs[0]["invitation_id"]


def test_decision_of_an_invitation_shares_its_id_and_instant() -> None:
    out = drive([view(T0, attributes={"plan": "pro"})], GREETING)

    (decision,), (invitation,) = out.decisions, out.invitations

    assert (decision["invitation_id"], decision["triggered_at"], decision["outcome"]) == (
        invitation["invitation_id"],
        invitation["triggered_at"],
        "invited",
    )


def test_every_decision_and_invitation_validates_against_the_models() -> None:
    mixed = rules(
        """
        rules:
          - {id: a, priority: 2, trigger: {dwell_seconds: 10}, message: {text: "A"}}
          - {id: b, priority: 1, trigger: {dwell_seconds: 10}, message: {text: "B"}}
          - {id: c, holdout_pct: 100, trigger: {pages_in_session: 2}, message: {text: "C"}}
        """
    )
    events = [view(T0), view(T0 + 20 * SECOND, OTHER), view(T0 + 40 * SECOND)]

    out = drive(events, mixed)

    decisions = [DECISION.validate_python(d) for d in out.decisions]
    invitations = [INVITATION.validate_python(i) for i in out.invitations]
    assert (len(decisions), len(invitations)) == (8, 1)


def test_suppressed_decision_carries_its_reason_and_no_invitation() -> None:
    held = rules(
        """
        rules:
          - {id: held, holdout_pct: 100, trigger: {pages_in_session: 1}, message: {text: "A"}}
        """
    )

    out = drive([view(T0)], held)

    assert [(d["outcome"], d["reason"]) for d in out.decisions] == [("suppressed", "holdout")]


# --- duplicates -----------------------------------------------------------------------

TWO_PAGES = rules(
    """
    rules:
      - {id: two, trigger: {pages_in_session: 2}, message: {text: "Hi"}}
    """
)


def test_repeated_event_id_is_ignored() -> None:
    first = view(T0, event_id="e1")
    copy = view(T0, event_id="e1")

    out = drive([first, copy], TWO_PAGES)

    assert out.decisions == []


def test_repeated_page_view_later_does_not_reset_dwell() -> None:
    dwell = rules(
        """
        rules:
          - {id: dwell, trigger: {dwell_seconds: 30}, message: {text: "Hi"}}
        """
    )
    events = [
        view(T0, event_id="e1"),
        ping(T0 + 10 * SECOND),
        view(T0 + 20 * SECOND, event_id="e1"),
    ]

    out = drive(events, dwell)

    assert [d["triggered_at"] for d in out.decisions] == ["2026-12-01T10:00:30.000Z"]


def test_distinct_event_ids_are_counted() -> None:
    out = drive([view(T0, event_id="e1"), view(T0 + SECOND, event_id="e2")], TWO_PAGES)

    assert len(out.decisions) == 1


# --- enabled ----------------------------------------------------------------------------


def test_disabled_rule_is_never_evaluated() -> None:
    off = rules(
        """
        rules:
          - {id: disabled, enabled: false, trigger: {pages_in_session: 1}, message: {text: "Hi"}}
        """
    )

    out = drive([view(T0), view(T0 + 2 * 60 * SECOND, OTHER)], off)

    assert out.decisions == []


def test_disabled_rule_does_not_outrank_an_enabled_one() -> None:
    two = rules(
        """
        rules:
          - {id: disabled, enabled: false, priority: 99, trigger: {pages_in_session: 1},
             message: {text: "A"}}
          - {id: active, trigger: {pages_in_session: 1}, message: {text: "B"}}
        """
    )

    out = drive([view(T0)], two)

    assert out.fired() == [("active", T0, "invited")]
