"""The collector over real HTTP against a real broker: trackers in, ClickEvents in Kafka.

Each test runs a collector in a thread of its own (its own event loop, a free port), so
the real tracker libraries, which are synchronous, can talk to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition

from schemas.events import Custom, PagePing, PageView, Scroll, parse_event
from streams.collector.sites import SiteConfig, Sites
from streams.kafka.topics import TopicSpec, ensure_topics
from streams.ops import broker
from streams.settings import Settings, load_settings
from tests.helpers import free_port
from tests.integration.helpers import running_collector

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"
SITES = Sites(
    {
        "shop": SiteConfig(
            origins=(SHOP, "https://*.shop.example"),
            keys=("key-shop-1",),
            presence_s={"snowplow": 600},  # its tracker pings only on activity
        ),
        "limited": SiteConfig(keys=("key-limited-1",), rate_per_s=0.01, burst=5),
    }
)
TP2 = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture
def collector(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> Iterator[tuple[str, Settings]]:
    """(base URL, settings) of a collector writing to a topic of its own."""
    settings = kafka_settings.model_copy(
        update={
            "topic_clickstream": new_topic("collector"),
            "collector_country_header": "CF-IPCountry",
        }
    )
    with running_collector(settings, SITES) as url:
        yield url, settings


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of a topic, up to its end offsets now."""
    consumer = KafkaConsumer(**settings.kafka_python_config(), enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in parts):
            assert time.monotonic() < deadline, "the topic could not be read to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def landed(settings: Settings) -> list[Any]:
    """The ClickEvents in the collector's topic, checking that each is keyed by visitor."""
    events = []
    for record in read_topic(settings, settings.topic_clickstream):
        event = parse_event(record.value)
        assert record.key == event.visitor_id.encode()
        events.append(event)
    return events


def event(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "type": "page_view",
        "visitor_id": "v1",
        "site_id": "shop",
        "ts": int(time.time() * 1000),
        "url": f"{SHOP}/pricing",
        **fields,
    }


# --- the three protocols ---------------------------------------------------------------------


def test_beckon_json_lands_keyed_by_visitor_with_request_attributes(
    collector: tuple[str, Settings], http: requests.Session
) -> None:
    url, settings = collector
    headers = {
        "X-Beckon-Key": "key-shop-1",
        "User-Agent": IPHONE,
        "Origin": SHOP,
        "Accept-Language": "ja-JP,en;q=0.5",
        "CF-IPCountry": "JP",
    }
    one = http.post(f"{url}/v1/events", json=event(), headers=headers)
    many = http.post(
        f"{url}/v1/events?key=key-shop-1",
        json=[event(event_id=f"e{i}", visitor_id=f"v{i % 3}") for i in range(2, 8)],
        headers={"User-Agent": IPHONE},
    )

    assert (one.status_code, one.json()) == (200, {"accepted": 1})
    assert one.headers["Access-Control-Allow-Origin"] == SHOP
    assert (many.status_code, many.json()) == (200, {"accepted": 6})
    events = {e.event_id: e for e in landed(settings)}
    assert sorted(events) == [f"e{i}" for i in range(1, 8)]
    assert events["e1"].user_agent == IPHONE
    assert events["e1"].attributes == {"language": "ja", "country": "JP"}
    assert events["e5"].visitor_id == "v2"
    assert all(e.presence_s is None for e in events.values())  # a window for Snowplow only


def test_snowplow_python_tracker_post_and_get_land_as_click_events(
    collector: tuple[str, Settings],
) -> None:
    import snowplow_tracker as sp

    url, settings = collector
    host, port = url.removeprefix("http://").split(":")
    failures: list[Any] = []
    subject = sp.Subject().set_domain_user_id("duid-1").set_domain_session_id("sid-1")
    subject.set_lang("de-DE").set_useragent(IPHONE)
    post = sp.Emitter(
        host,
        protocol="http",
        port=int(port),
        method="post",
        on_failure=lambda n, evs: failures.append(evs),
    )
    get = sp.Emitter(
        host,
        protocol="http",
        port=int(port),
        method="get",
        on_failure=lambda n, evs: failures.append(evs),
    )
    tracker = sp.Tracker("beckon-test", [post, get], subject=subject, app_id="shop")
    tracker.track(sp.PageView(page_url=f"{SHOP}/pricing", page_title="Pricing"))
    tracker.track(sp.PagePing(page_url=f"{SHOP}/pricing", min_y=0, max_y=400))
    tracker.track(sp.StructuredEvent(category="video", action="play"))
    cart = sp.SelfDescribingJson("iglu:com.acme/add_to_cart/jsonschema/1-0-0", {"sku": "A-1"})
    tracker.track(sp.SelfDescribing(cart))
    tracker.flush()

    assert failures == []
    events = landed(settings)
    assert len(events) == 8  # four events, each by POST and by GET
    assert {e.visitor_id for e in events} == {"duid-1"}
    assert {e.session_id for e in events} == {"sid-1"}
    kinds = sorted((type(e).__name__, getattr(e, "name", "")) for e in events)
    assert kinds == sorted(
        [
            (PageView.__name__, ""),
            (PagePing.__name__, ""),
            (Custom.__name__, "play"),
            (Custom.__name__, "add_to_cart"),
        ]
        * 2
    )
    assert all(e.attributes["language"] == "de" and e.user_agent == IPHONE for e in events)
    assert all(e.presence_s == 600 for e in events)  # the site's window for Snowplow
    assert not any(isinstance(e, Scroll) for e in events)  # the tracker sends no page size


def test_segment_python_library_lands_as_click_events(collector: tuple[str, Settings]) -> None:
    from segment.analytics import Client

    url, settings = collector
    errors: list[Any] = []
    client = Client("key-shop-1", host=url, gzip=True, on_error=lambda e, b: errors.append(e))
    client.page(anonymous_id="anon-1", name="Pricing", context={"page": {"url": f"{SHOP}/p"}})
    client.track(anonymous_id="anon-1", event="Signed Up", properties={"plan": "pro"})
    client.identify(anonymous_id="anon-1", user_id="u-1", traits={"plan": "pro"})
    client.track(user_id="u-2", event="Logged In")
    client.flush()
    client.shutdown()

    assert errors == []
    events = sorted(landed(settings), key=lambda e: (e.visitor_id, e.type))
    assert [(e.visitor_id, e.type, e.site_id) for e in events] == [
        ("anon-1", "custom", "shop"),
        ("anon-1", "identify", "shop"),
        ("anon-1", "page_view", "shop"),
        ("u-2", "custom", "shop"),
    ]
    assert events[0].name == "Signed Up"
    assert events[1].attributes["plan"] == "pro"
    assert events[1].attributes["user_id"] == "u-1"
    assert events[2].url == f"{SHOP}/p"


# --- refusals ----------------------------------------------------------------------------------


def test_refusals_name_the_fault_and_nothing_refused_lands(
    collector: tuple[str, Settings], http: requests.Session
) -> None:
    url, settings = collector
    key = {"X-Beckon-Key": "key-shop-1"}
    bad = http.post(
        f"{url}/v1/events",
        headers=key,
        json=[event(), event(event_id="e2", type="scroll", scroll_pct=140)],
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "[1].scroll_pct"
    not_json = http.post(f"{url}/v1/events", headers=key, data=b"{oops")
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid")

    wrong_key = http.post(f"{url}/v1/events", json=event(), headers={"X-Beckon-Key": "nope-nope"})
    no_key = http.post(f"{url}/v1/events", json=event())
    other_site = http.post(f"{url}/v1/events", json=event(site_id="nowhere"), headers=key)
    origin = http.post(
        f"{url}/v1/events", json=event(), headers={**key, "Origin": "https://evil.example"}
    )
    segment = http.post(f"{url}/v1/track", auth=("unknown-key", ""), json={"anonymousId": "a"})
    assert [r.status_code for r in (wrong_key, no_key, other_site, origin, segment)] == [403] * 5
    assert [wrong_key.json()["field"], no_key.json()["field"]] == ["X-Beckon-Key"] * 2
    assert other_site.json()["field"] == "site_id"
    assert segment.json()["field"] == "Authorization"
    assert origin.json()["field"] == "Origin"
    assert "Access-Control-Allow-Origin" not in origin.headers

    limited = {"X-Beckon-Key": "key-limited-1"}
    burst = [event(event_id=f"l{i}", site_id="limited") for i in range(5)]
    assert http.post(f"{url}/v1/events", json=burst, headers=limited).status_code == 200
    over = http.post(
        f"{url}/v1/events", json=event(event_id="l5", site_id="limited"), headers=limited
    )
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1
    too_many = [event(event_id=f"m{i}", site_id="limited") for i in range(6)]
    assert http.post(f"{url}/v1/events", json=too_many, headers=limited).status_code == 413

    huge = http.post(
        f"{url}/v1/events", headers=key, data=b"[" + b" " * settings.collector_max_body_bytes + b"]"
    )
    assert (huge.status_code, huge.json()["code"]) == (413, "too_large")
    big = event(event_id="big", attributes={"blob": "x" * settings.max_event_bytes})
    too_big = http.post(f"{url}/v1/events", json=big, headers=key)
    assert (too_big.status_code, too_big.json()["field"]) == (413, "")

    assert sorted(e.event_id for e in landed(settings)) == [f"l{i}" for i in range(5)]


def test_cors_preflight_answers_allowed_origins_only(
    collector: tuple[str, Settings], http: requests.Session
) -> None:
    url, _ = collector
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-beckon-key",
    }
    for path in ("/v1/events", "/com.snowplowanalytics.snowplow/tp2", "/v1/batch", "/i"):
        ok = http.options(f"{url}{path}", headers={**ask, "Origin": "https://m.shop.example"})
        assert ok.status_code == 204
        assert ok.headers["Access-Control-Allow-Origin"] == "https://m.shop.example"
        assert ok.headers["Access-Control-Allow-Credentials"] == "true"
        assert "x-beckon-key" in ok.headers["Access-Control-Allow-Headers"].lower()
        no = http.options(f"{url}{path}", headers={**ask, "Origin": "https://evil.example"})
        assert no.status_code == 403
        assert "Access-Control-Allow-Origin" not in no.headers


def test_development_mode_accepts_any_site_and_echoes_any_origin(
    kafka_settings: Settings, new_topic: Callable[..., str], http: requests.Session
) -> None:
    settings = kafka_settings.model_copy(update={"topic_clickstream": new_topic("dev")})
    with running_collector(settings, Sites(None)) as url:
        answer = http.post(
            f"{url}/v1/events",
            json=event(site_id="anything"),
            headers={"Origin": "https://anywhere.example"},
        )
        segment = http.post(
            f"{url}/v1/page",
            auth=("any-write-key", ""),
            json={"anonymousId": "a", "properties": {"url": f"{SHOP}/"}},
        )
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "https://anywhere.example"
    assert segment.status_code == 200
    assert {e.site_id for e in landed(settings)} == {"anything", "any-write-key"}


# --- fuzz ---------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_ascii = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.strip)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid payload with some fields deleted or replaced by anything."""
    keys = sorted(base)
    return st.builds(
        lambda drop, replace: {**{k: v for k, v in base.items() if k not in drop}, **replace},
        st.sets(st.sampled_from(keys), max_size=2),
        st.dictionaries(st.sampled_from([*keys, "attributes", "extra"]), _json, max_size=2),
    )


def _now() -> str:
    return str(int(time.time() * 1000))


SP = {
    "e": "pv",
    "eid": "f-1",
    "aid": "shop",
    "duid": "d",
    "dtm": _now(),
    "url": f"{SHOP}/",
    "se_ac": "play",
    "pp_may": "10",
    "vp": "10x10",
    "ds": "10x100",
}
SEG = {
    "type": "page",
    "messageId": "m-1",
    "anonymousId": "a",
    "event": "x",
    "context": {"page": {"url": f"{SHOP}/"}},
    "traits": {"plan": "pro"},
}
ENDPOINTS = {
    "/v1/events": st.one_of(
        _json, _mutated(event(event_id="f-1")), st.lists(_mutated(event()), max_size=3)
    ),
    "/com.snowplowanalytics.snowplow/tp2": st.one_of(
        _json, st.builds(lambda d: {"schema": TP2, "data": d}, st.lists(_mutated(SP), max_size=3))
    ),
    "/v1/page": st.one_of(_json, _mutated(SEG)),
    "/v1/track": _mutated(SEG),
    "/v1/identify": _mutated(SEG),
    "/v1/batch": st.one_of(
        _json, st.builds(lambda b: {"batch": b}, st.lists(_mutated(SEG), max_size=3))
    ),
}
_CREDENTIALS = {"X-Beckon-Key": "key-shop-1", "Authorization": "Basic a2V5LXNob3AtMTo="}
HEADERS = st.builds(
    lambda credentials, extra: {**credentials, **extra},
    st.sampled_from([_CREDENTIALS, {}]),  # mostly right credentials, so events get through
    st.fixed_dictionaries(
        {},
        optional={
            "Origin": st.sampled_from([SHOP, "https://evil.example", "null"]) | _ascii,
            "X-Beckon-Key": st.sampled_from(["key-shop-1", "nope"]),
            "Beckon-Sent-At": st.sampled_from([_now(), "0"]) | _ascii,
            "Accept-Language": _ascii,
            "User-Agent": _ascii,
            "CF-IPCountry": _ascii,
            "Authorization": st.sampled_from(["Basic a2V5LXNob3AtMTo=", "Basic !!", "Bearer x"])
            | _ascii,
        },
    ),
)


def test_fuzz_every_endpoint_answers_4xx_never_5xx_and_only_valid_events_land(
    collector: tuple[str, Settings], http: requests.Session
) -> None:
    url, settings = collector
    answers: dict[int, int] = {}

    @hypothesis_settings(
        max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        path=st.sampled_from([*ENDPOINTS, "/i"]),
        data=st.data(),
        headers=HEADERS,
        raw=st.none() | st.binary(max_size=40),
    )
    def request_anything(
        path: str, data: st.DataObject, headers: dict[str, str], raw: bytes | None
    ) -> None:
        if path == "/i":
            params = data.draw(_mutated(SP) | st.dictionaries(_text, _text, max_size=4))
            params = {
                k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in params.items()
            }
            answer = http.get(f"{url}/i", params=params, headers=headers)
        else:
            body = raw if raw is not None else orjson.dumps(data.draw(ENDPOINTS[path]))
            answer = http.post(f"{url}{path}", data=body, headers=headers)
        assert answer.status_code in (200, 400, 403, 413, 429), answer.text
        answers[answer.status_code] = answers.get(answer.status_code, 0) + 1

    request_anything()

    assert answers.get(200, 0) > 10 and answers.get(400, 0) > 10 and answers.get(403, 0) > 10
    events = landed(settings)  # parses and checks every record
    assert all(e.site_id == "shop" for e in events)


# --- Kafka down ---------------------------------------------------------------------------------


def test_broker_down_answers_503_then_accepts_once_it_is_back(
    tmp_path: Path, http: requests.Session
) -> None:
    port, cport = free_port(), free_port()
    settings = load_settings(
        bootstrap=f"localhost:{port}",
        broker_port=port,
        controller_port=cport,
        broker_dir=tmp_path / "broker",
        broker_heap="512m",
        collector_ack_timeout_s=3,
        topic_clickstream="down.clickstream",
    )
    broker.start(settings)
    try:
        ensure_topics(settings, [TopicSpec("down.clickstream", 2, {})])
        key = {"X-Beckon-Key": "key-shop-1"}
        with running_collector(settings, SITES) as url:
            before = http.post(f"{url}/v1/events", json=event(event_id="before"), headers=key)
            broker.stop(settings)
            down = http.post(f"{url}/v1/events", json=event(event_id="during"), headers=key)
            health = http.get(f"{url}/healthz")
            broker.start(settings)
            deadline = time.monotonic() + 90
            retry = down
            while retry.status_code == 503 and time.monotonic() < deadline:
                time.sleep(float(retry.headers["Retry-After"]) / 5)
                retry = http.post(f"{url}/v1/events", json=event(event_id="during"), headers=key)
        assert before.status_code == 200
        assert (down.status_code, down.json()["code"]) == (503, "unavailable")
        assert int(down.headers["Retry-After"]) >= 1
        assert health.status_code == 503
        assert retry.status_code == 200
        ids = [e.event_id for e in landed(settings)]
        assert ids.count("before") == 1
        assert ids.count("during") >= 1  # the 503'd send may land too: same id, a duplicate
    finally:
        broker.stop(settings)
