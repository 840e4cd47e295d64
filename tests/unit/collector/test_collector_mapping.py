"""Tracker payloads -> ClickEvents: Beckon JSON, Snowplow, Segment; sites and rate limits."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.errors import ConfigError, InvalidEvent
from schemas.events import Custom, Identify, PagePing, PageView, Scroll
from streams.collector.sites import SiteConfig, Sites
from streams.collector.trackers import (
    Received,
    corrected_ts,
    country_code,
    from_beckon,
    from_segment,
    from_snowplow_get,
    from_snowplow_post,
    primary_language,
)

NOW = 1_764_579_600_000  # 2025-12-01T09:00:00Z, the server's clock
MIN = 60_000
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"
REQUEST = Received(now_ms=NOW, user_agent=IPHONE, language="ja", country="JP")
TP2 = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


def problems(call: Any, *args: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidEvent) as caught:
        call(*args)
    return caught.value.problems


def page_view(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "type": "page_view",
        "visitor_id": "v1",
        "site_id": "shop",
        "ts": NOW - 1000,
        "url": "https://shop.example/pricing",
        **fields,
    }


# --- Beckon JSON ---------------------------------------------------------------------------


def test_beckon_event_gets_the_requests_user_agent_language_and_country() -> None:
    (event,) = from_beckon(page_view(), REQUEST).events
    assert isinstance(event, PageView)
    assert event.user_agent == IPHONE
    assert event.attributes == {"language": "ja", "country": "JP"}
    assert event.ts == NOW - 1000


def test_beckon_events_own_user_agent_and_attributes_win() -> None:
    own = page_view(user_agent="Bot/1.0", attributes={"language": "pt-BR", "country": "BR"})
    (event,) = from_beckon(own, REQUEST).events
    assert event.user_agent == "Bot/1.0"
    assert event.attributes == {"language": "pt-BR", "country": "BR"}


def test_beckon_list_refused_whole_naming_index_and_field() -> None:
    body = [page_view(), page_view(event_id="e2", type="scroll", scroll_pct=140), 7]
    assert problems(from_beckon, body, REQUEST) == [
        ("[1].scroll_pct", "must be between 0 and 100, got 140"),
        ("[2]", "must be an event object, got an integer"),
    ]


def test_beckon_empty_list_and_missing_fields_are_refused() -> None:
    assert problems(from_beckon, [], REQUEST)[0][0] == ""
    no_url = {k: v for k, v in page_view().items() if k != "url"}
    assert problems(from_beckon, no_url, REQUEST) == [("url", "is required")]


def test_beckon_batch_paths_point_at_each_events_site() -> None:
    batch = from_beckon([page_view(), page_view(event_id="e2")], REQUEST)
    assert (batch.paths, batch.site_field) == (["[0]", "[1]"], "site_id")


# --- Clock correction ---------------------------------------------------------------------


def test_clock_within_skew_is_kept_and_far_off_without_send_time_becomes_now() -> None:
    assert corrected_ts(NOW - 4 * MIN, None, NOW, 5 * MIN) is None
    assert corrected_ts(NOW - 60 * MIN, None, NOW, 5 * MIN) == NOW
    assert corrected_ts(NOW + 60 * MIN, None, NOW, 5 * MIN) == NOW


def test_clock_with_send_time_moves_by_the_clocks_offset_keeping_the_events_age() -> None:
    # The device clock is an hour behind; the event happened 10 s before it was sent.
    assert corrected_ts(NOW - 60 * MIN - 10_000, NOW - 60 * MIN, NOW, 5 * MIN) == NOW - 10_000
    # A right clock sending events buffered for an hour keeps their time.
    assert corrected_ts(NOW - 60 * MIN, NOW - 1000, NOW, 5 * MIN) is None


def test_corrected_event_is_flagged_with_the_original_time() -> None:
    (event,) = from_beckon(page_view(ts="2020-01-01T00:00:00Z"), REQUEST).events
    assert event.ts == NOW
    assert event.attributes["clock_corrected"] is True
    assert event.attributes["client_ts"] == 1_577_836_800_000


def test_malformed_time_is_a_400_not_a_correction() -> None:
    assert problems(from_beckon, page_view(ts="yesterday"), REQUEST)[0][0] == "ts"


# --- Request-level facts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("ja-JP,en;q=0.5", "ja"),
        ("en;q=0.3, fr-CA;q=0.9", "fr"),
        ("*", None),
        ("", None),
        (None, None),
        ("de;q=bad, es", "es"),
        ("EN-us", "en"),
    ],
)
def test_primary_language_of_accept_language(header: str | None, language: str | None) -> None:
    assert primary_language(header) == language


@pytest.mark.parametrize(
    ("value", "code"), [("jp", "JP"), (" US ", "US"), ("XX", None), ("T1", None), ("JPN", None)]
)
def test_country_code_from_trusted_header(value: str, code: str | None) -> None:
    assert country_code(value) == code


# --- Snowplow ------------------------------------------------------------------------------


def sp(**fields: str) -> dict[str, str]:
    return {
        "e": "pv",
        "eid": "sp-1",
        "aid": "shop",
        "duid": "d-1",
        "sid": "s-1",
        "dtm": str(NOW - 2000),
        "stm": str(NOW - 1000),
        "url": "https://shop.example/",
        **fields,
    }


def tp2(*events: dict[str, str]) -> dict[str, Any]:
    return {"schema": TP2, "data": list(events)}


def test_snowplow_page_view_maps_every_field() -> None:
    payload = sp(page="Pricing", refr="https://google.com/", ua="UA/1", lang="en-GB")
    (event,) = from_snowplow_post(tp2(payload), REQUEST).events
    assert event == PageView(
        type="page_view",
        event_id="sp-1",
        visitor_id="d-1",
        site_id="shop",
        session_id="s-1",
        ts=NOW - 2000,
        url="https://shop.example/",
        title="Pricing",
        referrer="https://google.com/",
        user_agent="UA/1",
        attributes={"language": "en", "country": "JP"},
    )


def test_snowplow_visitor_is_duid_else_uid_else_network_id() -> None:
    def visitor(payload: dict[str, str], received: Received = REQUEST) -> str:
        return from_snowplow_get(payload, received).events[0].visitor_id

    assert visitor(sp(uid="u-1")) == "d-1"
    assert visitor(sp(duid="", uid="u-1")) == "u-1"
    assert visitor(sp(duid="", tnuid="n-1")) == "n-1"
    with_cookie = Received(now_ms=NOW, network_id="cookie-1")
    assert visitor(sp(duid=""), with_cookie) == "cookie-1"
    no_id = ("duid", "is required (or uid, tnuid, or the sp cookie)")
    assert problems(from_snowplow_get, sp(duid=""), REQUEST) == [no_id]


def test_snowplow_user_id_becomes_an_attribute() -> None:
    (event,) = from_snowplow_get(sp(uid="alice"), REQUEST).events
    assert event.attributes["user_id"] == "alice"


def test_snowplow_page_ping_with_offsets_also_gives_a_scroll() -> None:
    ping = sp(e="pp", vp="1280x800", ds="1280x3200", pp_may="1600", pp_miy="0")
    ping_event, scroll = from_snowplow_post(tp2(ping), REQUEST).events
    assert isinstance(ping_event, PagePing)
    assert isinstance(scroll, Scroll)
    assert (scroll.event_id, scroll.scroll_pct) == ("sp-1.scroll", 75.0)


def test_snowplow_page_ping_without_sizes_is_only_a_ping() -> None:
    events = from_snowplow_post(tp2(sp(e="pp", pp_may="10")), REQUEST).events
    assert [type(e) for e in events] == [PagePing]


def test_snowplow_structured_event_is_custom_named_by_its_action() -> None:
    (event,) = from_snowplow_get(sp(e="se", se_ca="video", se_ac="play"), REQUEST).events
    assert isinstance(event, Custom)
    assert event.name == "play"
    assert problems(from_snowplow_get, sp(e="se", se_ca="video"), REQUEST) == [
        ("se_ac", "is required")
    ]


def test_snowplow_self_describing_event_is_custom_named_by_its_schema() -> None:
    envelope = {
        "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
        "data": {"schema": "iglu:com.acme/add_to_cart/jsonschema/1-0-0", "data": {"sku": "A-1"}},
    }
    encoded = base64.urlsafe_b64encode(orjson.dumps(envelope)).decode().rstrip("=")
    (px,) = from_snowplow_get(sp(e="ue", ue_px=encoded), REQUEST).events
    (pr,) = from_snowplow_get(sp(e="ue", ue_pr=orjson.dumps(envelope).decode()), REQUEST).events
    assert isinstance(px, Custom) and isinstance(pr, Custom)
    assert px.name == pr.name == "add_to_cart"
    assert problems(from_snowplow_get, sp(e="ue", ue_px="%%%"), REQUEST)[0][0] == "ue_px"
    assert problems(from_snowplow_get, sp(e="ue", ue_pr="{}"), REQUEST)[0][0] == "ue_pr"


def test_snowplow_ecommerce_is_ignored_and_unknown_kinds_refused() -> None:
    batch = from_snowplow_post(tp2(sp(e="tr", tr_id="o-1"), sp(eid="sp-2")), REQUEST)
    assert (len(batch.events), batch.ignored, batch.paths) == (1, 1, ["data[1]"])
    assert problems(from_snowplow_get, sp(e="zz"), REQUEST)[0][0] == "e"


def test_snowplow_faults_name_the_trackers_fields_and_index() -> None:
    bad = tp2(sp(), sp(eid="sp-2", url=""), sp(eid="sp-3", aid=""), sp(dtm="soon"))
    assert problems(from_snowplow_post, bad, REQUEST) == [
        ("data[1].url", "is required"),
        ("data[2].aid", "is required: the site id"),
        (
            "data[3].dtm",
            "must be RFC 3339 with an offset (e.g. '2026-12-01T09:00:00Z') or "
            "epoch milliseconds, got 'soon'",
        ),
    ]


def test_snowplow_envelope_must_be_payload_data() -> None:
    assert problems(from_snowplow_post, {"schema": "x", "data": []}, REQUEST)[0][0] == "schema"
    assert problems(from_snowplow_post, {"schema": TP2, "data": []}, REQUEST)[0][0] == "data"
    assert problems(from_snowplow_post, tp2({"e": ["pv"]}), REQUEST)[0][0] == "data[0].e"


def test_snowplow_clock_is_corrected_by_send_time_but_true_time_is_trusted() -> None:
    hour = 60 * MIN
    skewed = sp(dtm=str(NOW - hour - 3000), stm=str(NOW - hour))
    (event,) = from_snowplow_get(skewed, REQUEST).events
    assert event.ts == NOW - 3000
    assert event.attributes["client_ts"] == NOW - hour - 3000
    (trusted,) = from_snowplow_get(sp(ttm=str(NOW - hour)), REQUEST).events
    assert trusted.ts == NOW - hour
    assert "clock_corrected" not in trusted.attributes


def test_snowplow_event_without_id_gets_the_same_id_on_a_retry() -> None:
    first = from_snowplow_get(sp(eid="", stm="1"), REQUEST).events[0]
    retry = from_snowplow_get(sp(eid="", stm="2"), REQUEST).events[0]
    assert first.event_id == retry.event_id
    assert first.event_id.startswith("sp-")


# --- Segment -------------------------------------------------------------------------------


def seg(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "messageId": f"m-{kind}",
        "anonymousId": "anon-1",
        "timestamp": "2025-12-01T08:59:59.000Z",
        **fields,
    }


def test_segment_page_is_a_page_view_with_the_context_pages_url() -> None:
    page = seg(
        "page",
        name="Pricing",
        userId="u-9",
        context={
            "page": {"url": "https://shop.example/p", "referrer": "https://r/"},
            "userAgent": "UA/2",
            "locale": "fr-FR",
        },
    )
    (event,) = from_segment(page, "page", "shop", REQUEST).events
    assert event == PageView(
        type="page_view",
        event_id="m-page",
        visitor_id="anon-1",
        site_id="shop",
        ts=NOW - 1000,
        url="https://shop.example/p",
        referrer="https://r/",
        title="Pricing",
        user_agent="UA/2",
        attributes={"user_id": "u-9", "language": "fr", "country": "JP"},
    )


def test_segment_page_url_falls_back_to_properties_and_is_required() -> None:
    page = seg("page", properties={"url": "https://shop.example/q", "title": "Q"})
    (event,) = from_segment(page, "page", "shop", REQUEST).events
    assert (event.url, event.title) == ("https://shop.example/q", "Q")
    assert problems(from_segment, seg("page"), "page", "shop", REQUEST) == [
        ("context.page.url", "is required (or properties.url)")
    ]


def test_segment_track_is_custom_named_by_event_and_identify_carries_traits() -> None:
    body = {
        "batch": [
            seg("track", event="Signed Up", properties={"plan": "pro"}),
            seg(
                "identify",
                userId="u-1",
                traits={"plan": "pro", "address": {"city": "Tokyo"}, "tags": ["a"], "vip": True},
            ),
        ]
    }
    track, identify = from_segment(body, None, "shop", REQUEST).events
    assert isinstance(track, Custom) and track.name == "Signed Up"
    assert "plan" not in track.attributes  # properties describe the event, not the visitor
    assert isinstance(identify, Identify)
    assert identify.attributes == {
        "user_id": "u-1",
        "plan": "pro",
        "address.city": "Tokyo",
        "vip": True,
        "language": "ja",
        "country": "JP",
    }


def test_segment_visitor_is_anonymous_id_else_user_id() -> None:
    (event,) = from_segment(
        seg("track", event="x", anonymousId=None, userId=42), "track", "shop", REQUEST
    ).events
    assert event.visitor_id == "42"
    assert problems(
        from_segment, seg("track", event="x", anonymousId=""), "track", "shop", REQUEST
    ) == [("anonymousId", "is required (or userId)")]


def test_segment_batch_faults_name_index_and_field_and_other_kinds_are_ignored() -> None:
    body = {
        "batch": [
            seg("track"),
            seg("group", groupId="g"),
            seg("page", timestamp="noon", context={"page": {"url": "https://x/"}}),
            seg("screen"),
            {"type": "boom"},
        ]
    }
    found = problems(from_segment, body, None, "shop", REQUEST)
    assert [path for path, _ in found] == ["batch[0].event", "batch[2].timestamp", "batch[4].type"]
    ok = from_segment({"batch": [seg("group"), seg("track", event="e")]}, None, "s", REQUEST)
    assert (len(ok.events), ok.ignored, ok.paths) == (1, 1, ["batch[1]"])


def test_segment_message_type_of_any_json_type_is_a_400() -> None:
    for kind in ([], {}, 3, None):
        body = {"batch": [{**seg("track", event="x"), "type": kind}]}
        assert problems(from_segment, body, None, "shop", REQUEST)[0][0] == "batch[0].type"


def test_segment_sent_at_corrects_a_skewed_clock() -> None:
    body = {
        "batch": [seg("track", event="x", timestamp="2025-12-01T07:59:58Z")],
        "sentAt": "2025-12-01T08:00:00Z",
    }
    (event,) = from_segment(body, None, "shop", REQUEST).events
    assert event.ts == NOW - 2000
    assert event.attributes["clock_corrected"] is True
    assert problems(from_segment, {**body, "sentAt": "later"}, None, "s", REQUEST)[0][0] == "sentAt"


# --- Sites ---------------------------------------------------------------------------------

SHOP = SiteConfig(
    origins=("https://shop.example", "https://*.shop.example"),
    keys=("key-shop-1",),
    rate_per_s=10,
    burst=20,
)

STILL = SiteConfig(presence_s={"snowplow": 600, "segment": 120})


def test_site_keys_and_origins() -> None:
    sites = Sites({"shop": SHOP, "open": SiteConfig()})
    assert sites.site_of_key("key-shop-1") == "shop"
    assert sites.site_of_key("nope") is None
    assert sites.refusal("shop", "key-shop-1", "https://shop.example") is None
    assert sites.refusal("shop", "key-shop-1", "https://m.shop.example") is None
    assert sites.refusal("shop", None, None) == ("key", "site 'shop' needs one of its keys")
    assert sites.refusal("shop", "key-other", None) == ("key", "wrong key")
    assert sites.refusal("shop", None, None, check_key=False) is None
    assert sites.refusal("shop", "key-shop-1", "https://evil.example")[0] == "origin"  # type: ignore[index]
    assert sites.refusal("shop", "key-shop-1", "https://x.shop.example.evil") is not None
    assert sites.refusal("open", None, None) is None
    assert sites.refusal("elsewhere", None, None) == (
        "site",
        "'elsewhere' is not a site of this collector",
    )
    assert sites.origin_allowed("https://A.shop.example")
    assert not sites.origin_allowed("https://shop.example.evil")


def test_development_accepts_everything() -> None:
    sites = Sites(None)
    assert sites.development
    assert sites.refusal("any", None, "https://any.example") is None
    assert sites.site_of_key("write-key") == "write-key"
    assert sites.take({"any": 10**6}, now=0.0) is None


def test_rate_limit_is_a_token_bucket_per_site_all_or_nothing() -> None:
    sites = Sites({"shop": SHOP, "open": SiteConfig()})
    assert sites.take({"shop": 15, "open": 1000}, now=0.0) is None
    assert sites.take({"shop": 10}, now=0.0) == ("shop", 0.5)  # 5 left, 5 more in 0.5 s
    assert sites.take({"shop": 10}, now=0.5) is None
    assert sites.take({"shop": 21}, now=100.0) == ("shop", float("inf"))  # over the burst


def test_sites_file_is_validated_naming_the_setting_and_field(tmp_path: Path) -> None:
    good = tmp_path / "sites.yaml"
    good.write_text(
        "sites:\n  shop:\n    origins: ['https://shop.example']\n    keys: [k-123456]\n"
    )
    assert Sites.load(good).site_of_key("k-123456") == "shop"
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  shop:\n    origins: ['https://shop.example/path']\n    burst: 3\n")
    with pytest.raises(ConfigError, match=r"BECKON_COLLECTOR_SITES.*sites\.shop\.origins"):
        Sites.load(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text("sites:\n  a: {keys: [k-123456]}\n  b: {keys: [k-123456]}\n")
    with pytest.raises(ConfigError, match="one site only"):
        Sites.load(twice)


# --- presence windows ------------------------------------------------------------------


def test_snowplow_events_get_their_sites_presence_window() -> None:
    request = Received(now_ms=NOW, presence_s=Sites({"shop": STILL}).presence_s("snowplow"))
    ping = sp(e="pp", eid="sp-2", pp_may="900", vp="1200x800", ds="1200x3400")
    body = tp2(sp(), ping, sp(eid="sp-3", aid="blog"))

    events = from_snowplow_post(body, request).events

    assert [(e.type, e.site_id, e.presence_s) for e in events] == [
        ("page_view", "shop", 600),
        ("page_ping", "shop", 600),
        ("scroll", "shop", 600),
        ("page_view", "blog", None),  # a site without a window: the engine's timeout
    ]


def test_a_window_is_per_protocol() -> None:
    sites = Sites({"shop": STILL})
    request = Received(now_ms=NOW, presence_s=sites.presence_s("beckon"))

    (event,) = from_beckon(page_view(), request).events

    assert event.presence_s is None
    assert sites.presence_s("segment") == {"shop": 120}
    assert Sites(None).presence_s("snowplow") == {}


def test_segment_messages_get_their_sites_presence_window() -> None:
    request = Received(now_ms=NOW, presence_s=Sites({"shop": STILL}).presence_s("segment"))

    page = seg("page", properties={"url": "https://shop.example/q"})

    (event,) = from_segment(page, "page", "shop", request).events

    assert event.presence_s == 120


def test_a_beckon_events_own_presence_s_wins_over_the_sites() -> None:
    request = Received(now_ms=NOW, presence_s={"shop": 600})

    own, stamped = from_beckon([page_view(presence_s=45), page_view(event_id="e2")], request).events

    assert (own.presence_s, stamped.presence_s) == (45, 600)


def test_a_bad_presence_s_of_a_beckon_event_is_a_400_naming_it() -> None:
    assert problems(from_beckon, [page_view(), page_view(presence_s=0)], REQUEST) == [
        ("[1].presence_s", "must be at least 1, got 0")
    ]


def test_sites_file_presence_is_validated_naming_the_field(tmp_path: Path) -> None:
    good = tmp_path / "sites.yaml"
    good.write_text("sites:\n  shop:\n    presence_s: {snowplow: 600}\n")
    assert Sites.load(good).presence_s("snowplow") == {"shop": 600}
    for bad, where in [
        ("{snowplow: 7200}", r"sites\.shop\.presence_s\.snowplow: must be at most 3600"),
        ("{snowplough: 60}", r"sites\.shop\.presence_s\.snowplough.*'snowplow'"),
        ("600", r"sites\.shop\.presence_s: must be an object"),
    ]:
        good.write_text(f"sites:\n  shop:\n    presence_s: {bad}\n")
        with pytest.raises(ConfigError, match=where):
            Sites.load(good)
