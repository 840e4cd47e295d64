"""ClickEvent: every schema rule with good and bad input; errors name the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidEvent
from schemas.events import (
    EVENT_TYPES,
    PAGE_EVENT_TYPES,
    Custom,
    InvitationResponse,
    PageView,
    Scroll,
    event_to_json,
    parse_event,
    validate_event,
)

BASE = {"event_id": "e-1", "visitor_id": "v-1", "site_id": "shop", "ts": 1796083200000}
URL = "https://shop.example/pricing"
EXTRA_FOR: dict[str, dict[str, Any]] = {
    "page_view": {"url": URL},
    "page_ping": {"url": URL},
    "page_leave": {"url": URL},
    "scroll": {"url": URL, "scroll_pct": 50},
    "exit_intent": {"url": URL},
    "identify": {"attributes": {"plan": "pro"}},
    "custom": {"name": "video_played"},
    "invitation_response": {"invitation_id": "inv-1", "response": "accepted"},
}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {**BASE, "type": type_, **EXTRA_FOR[type_], **fields}


def problems_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(orjson.dumps(data))
    return caught.value.problems


def fields_of(data: Any) -> list[str]:
    return [path for path, _ in problems_of(data)]


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_parses_and_round_trips(type_: str) -> None:
    ev = parse_event(orjson.dumps(event(type_)))
    assert ev.type == type_
    assert parse_event(event_to_json(ev)) == ev
    assert validate_event(ev.model_dump(mode="json")) == ev


def test_a_page_view_carries_every_common_field() -> None:
    ev = parse_event(
        orjson.dumps(
            event(
                "page_view",
                session_id="s-1",
                referrer="",
                title="Pricing",
                user_agent="Mozilla/5.0",
                attributes={"plan": "pro", "visits": 3, "score": 0.5, "vip": True, "x": None},
            )
        )
    )
    assert isinstance(ev, PageView)
    assert (ev.session_id, ev.referrer, ev.title) == ("s-1", "", "Pricing")
    assert ev.attributes == {"plan": "pro", "visits": 3, "score": 0.5, "vip": True, "x": None}


def test_events_are_frozen() -> None:
    ev = parse_event(orjson.dumps(event("page_view")))
    with pytest.raises(ValueError, match="frozen"):
        ev.url = "https://elsewhere.example/"  # type: ignore[misc]


def test_text_input_is_accepted_as_well_as_bytes() -> None:
    assert parse_event(orjson.dumps(event("page_view")).decode()).type == "page_view"


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        (1796083200000, 1796083200000),
        ("2026-12-01T00:00:00Z", 1796083200000),
        ("2026-12-01T09:00:00+09:00", 1796083200000),
        ("2026-12-01T00:00:00.123456789z", 1796083200123),
        ("2026-11-30 19:00:00.5-05:00", 1796083200500),
    ],
)
def test_ts_is_normalised_to_epoch_ms(ts: Any, ms: int) -> None:
    ev = parse_event(orjson.dumps(event("page_view", ts=ts)))
    assert ev.ts == ms
    assert orjson.loads(event_to_json(ev))["ts"] == ms


def test_ts_without_offset_is_refused_with_a_clear_message() -> None:
    [(field, message)] = problems_of(event("page_view", ts="2026-12-01T09:00:00"))
    assert field == "ts"
    assert "no UTC offset" in message


@pytest.mark.parametrize(
    "ts", [True, 1796083200000.5, "yesterday", "2026-13-01T00:00:00Z", None, 10**16, -(10**16)]
)
def test_bad_ts_names_the_field(ts: Any) -> None:
    assert fields_of(event("page_view", ts=ts)) == ["ts"]


@pytest.mark.parametrize("type_", sorted(PAGE_EVENT_TYPES))
def test_page_event_without_url_names_the_field(type_: str) -> None:
    data = event(type_)
    del data["url"]
    assert problems_of(data) == [("url", "is required")]


@pytest.mark.parametrize("type_", ["identify", "custom", "invitation_response"])
def test_url_is_optional_for_other_events(type_: str) -> None:
    assert parse_event(orjson.dumps(event(type_))).url is None


@pytest.mark.parametrize("field", ["event_id", "visitor_id", "site_id"])
def test_missing_id_names_the_field(field: str) -> None:
    data = event("page_view")
    del data[field]
    assert problems_of(data) == [(field, "is required")]


@pytest.mark.parametrize("field", ["event_id", "visitor_id", "site_id", "session_id", "url"])
def test_empty_string_names_the_field(field: str) -> None:
    assert problems_of(event("page_view", **{field: ""})) == [(field, "must not be empty")]


def test_overlong_id_names_the_field() -> None:
    [(field, message)] = problems_of(event("page_view", visitor_id="v" * 201))
    assert (field, message) == ("visitor_id", "must be at most 200 characters, got 201")


def test_id_of_the_wrong_type_names_the_field() -> None:
    assert problems_of(event("page_view", visitor_id=42)) == [
        ("visitor_id", "must be a string, got an integer 42")
    ]


def test_scroll_without_scroll_pct_names_the_field() -> None:
    data = event("scroll")
    del data["scroll_pct"]
    assert problems_of(data) == [("scroll_pct", "is required")]


@pytest.mark.parametrize("pct", [-1, 140, 100.5])
def test_scroll_pct_out_of_range_says_what_is_accepted(pct: float) -> None:
    assert problems_of(event("scroll", scroll_pct=pct)) == [
        ("scroll_pct", f"must be between 0 and 100, got {pct}")
    ]


@pytest.mark.parametrize("pct", [0, 37.5, 100])
def test_scroll_pct_in_range_is_accepted(pct: float) -> None:
    ev = parse_event(orjson.dumps(event("scroll", scroll_pct=pct)))
    assert isinstance(ev, Scroll)
    assert ev.scroll_pct == pct


@pytest.mark.parametrize("pct", ["50", True])
def test_scroll_pct_is_not_coerced(pct: Any) -> None:
    assert fields_of(event("scroll", scroll_pct=pct)) == ["scroll_pct"]


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_may_carry_presence_s(type_: str) -> None:
    ev = parse_event(orjson.dumps(event(type_, presence_s=600)))
    assert ev.presence_s == 600
    assert parse_event(event_to_json(ev)) == ev


def test_an_event_without_presence_s_is_written_without_it() -> None:
    assert b"presence_s" not in event_to_json(parse_event(orjson.dumps(event("page_ping"))))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be at least 1, got 0"),
        (3601, "must be at most 3600, got 3601"),
        (45.5, "must be an integer, got a number 45.5"),
        ("45", "must be an integer, got a string '45'"),
        (True, "must be an integer, got a boolean true"),
    ],
)
def test_a_bad_presence_s_names_the_field_and_what_is_accepted(value: Any, message: str) -> None:
    assert problems_of(event("page_ping", presence_s=value)) == [("presence_s", message)]


def test_custom_without_name_names_the_field() -> None:
    data = event("custom")
    del data["name"]
    assert problems_of(data) == [("name", "is required")]
    assert isinstance(parse_event(orjson.dumps(event("custom"))), Custom)


@pytest.mark.parametrize("field", ["invitation_id", "response"])
def test_invitation_response_needs_its_fields(field: str) -> None:
    data = event("invitation_response")
    del data[field]
    assert problems_of(data) == [(field, "is required")]


@pytest.mark.parametrize("response", ["shown", "accepted", "declined", "dismissed"])
def test_every_invitation_response_is_accepted(response: str) -> None:
    ev = parse_event(orjson.dumps(event("invitation_response", response=response)))
    assert isinstance(ev, InvitationResponse)
    assert ev.response == response


def test_unknown_response_lists_the_accepted_ones() -> None:
    [(field, message)] = problems_of(event("invitation_response", response="ignored"))
    assert field == "response"
    assert "'declined'" in message and "'ignored'" in message


def test_unknown_type_lists_the_accepted_types() -> None:
    [(field, message)] = problems_of(event("page_view", type="foo"))
    assert field == "type"
    assert message == (
        "must be one of page_view, page_ping, page_leave, scroll, exit_intent, identify, "
        "custom, invitation_response; got 'foo'"
    )


def test_missing_type_names_the_field() -> None:
    data = event("page_view")
    del data["type"]
    assert fields_of(data) == ["type"]


def test_unknown_field_is_refused_and_named() -> None:
    [(field, message)] = problems_of(event("page_view", scroll_pct=10))
    assert field == "scroll_pct"
    assert message.startswith("is not a field of page_view events; accepted: event_id")


@pytest.mark.parametrize("value", [[1], {"a": 1}])
def test_attribute_values_must_be_json_scalars(value: Any) -> None:
    assert fields_of(event("identify", attributes={"plan": value}))[0].startswith("attributes.plan")


def test_every_problem_is_reported_at_once() -> None:
    data = event("scroll", scroll_pct=140, site_id="")
    del data["url"]
    assert sorted(fields_of(data)) == ["scroll_pct", "site_id", "url"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got a list"),
        (b'"page_view"', "must be a JSON object, got a string"),
        (b"null", "must be a JSON object, got null"),
    ],
)
def test_input_that_is_not_an_object_is_refused_as_a_whole(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.field == ""
    assert caught.value.problems[0][1].startswith(message)


def test_invalid_event_text_carries_field_and_reason() -> None:
    with pytest.raises(InvalidEvent, match=r"scroll_pct: must be between 0 and 100, got 140"):
        parse_event(orjson.dumps(event("scroll", scroll_pct=140)))


def test_event_to_json_leaves_out_unset_options() -> None:
    ev = parse_event(orjson.dumps(event("page_view")))
    assert orjson.loads(event_to_json(ev)) == {**event("page_view"), "attributes": {}}


@given(
    ts=st.integers(min_value=0, max_value=253402300799999),
    pct=st.floats(min_value=0, max_value=100),
    attrs=st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
        max_size=5,
    ),
)
def test_serialising_gives_the_same_event_back(ts: int, pct: float, attrs: dict[str, Any]) -> None:
    ev = parse_event(orjson.dumps(event("scroll", ts=ts, scroll_pct=pct, attributes=attrs)))
    assert parse_event(event_to_json(ev)) == ev
    assert validate_event(ev.model_dump(mode="json")) == ev
