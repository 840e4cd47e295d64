"""Derived profile attributes, locale choice, and compiled message templates."""

from __future__ import annotations

import orjson
import pytest
from cachetools import FIFOCache
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import validate_event
from schemas.templates import render_template
from streams.core.journey import Journey, apply
from streams.core.profile import (
    Template,
    device_of,
    known_device,
    landing_attributes,
    pick_locale,
    user_agent_key,
)

# --- device ---------------------------------------------------------------------------

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
MACOS_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (IPHONE_SAFARI, "mobile"),
        (IPAD_SAFARI, "tablet"),
        (ANDROID_PHONE_CHROME, "mobile"),
        (ANDROID_TABLET, "tablet"),
        (WINDOWS_CHROME, "desktop"),
        (MACOS_SAFARI, "desktop"),
        (GOOGLEBOT, "desktop"),
        (GOOGLEBOT_SMARTPHONE, "desktop"),  # a bot, whatever it claims to be
        ("", "desktop"),
        (None, "desktop"),
        ("definitely not a browser", "desktop"),
    ],
)
def test_device_of(user_agent: str | None, device: str) -> None:
    assert device_of(user_agent) == device


def _empty_cache() -> FIFOCache[str, str]:
    """The process's device cache as a new process has it."""
    import streams.core.profile as profile

    return FIFOCache(maxsize=profile.UA_CACHE_SIZE)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The user agents device-detector parses from here on, with an empty cache."""
    import streams.core.profile as profile

    seen: list[str] = []
    parse = profile._parse_device

    def counting(user_agent: str) -> str:
        seen.append(user_agent)
        return parse(user_agent)

    monkeypatch.setattr(profile, "_devices", _empty_cache())
    monkeypatch.setattr(profile, "_parse_device", counting)
    return seen


def test_device_of_parses_a_user_agent_once_and_keeps_a_bounded_number(
    parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.core.profile as profile

    assert device_of(WINDOWS_CHROME) == device_of(WINDOWS_CHROME) == "desktop"
    assert parses == [WINDOWS_CHROME]
    small: FIFOCache[str, str] = FIFOCache(maxsize=2)
    small.update(profile._devices)
    monkeypatch.setattr(profile, "_devices", small)
    for user_agent in (IPHONE_SAFARI, IPAD_SAFARI, WINDOWS_CHROME):
        device_of(user_agent)
    # The oldest (Windows) made room for the iPad, and is parsed again.
    assert parses == [WINDOWS_CHROME, IPHONE_SAFARI, IPAD_SAFARI, WINDOWS_CHROME]
    assert len(profile._devices) == 2
    assert known_device(IPHONE_SAFARI) is None and known_device(WINDOWS_CHROME) == "desktop"
    # First in, first out: reading the iPad's device does not keep it from going next.
    assert device_of(IPAD_SAFARI) == "tablet" and device_of(IPHONE_SAFARI) == "mobile"
    assert known_device(IPAD_SAFARI) is None and known_device(WINDOWS_CHROME) == "desktop"


def test_user_agent_key_is_stable_across_processes() -> None:
    # A journey saved by one worker is read by another: Python's str hash would differ.
    import subprocess
    import sys

    code = (
        f"from streams.core.profile import user_agent_key; print(user_agent_key({IPHONE_SAFARI!r}))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "random"})  # fmt: skip
    assert int(other.stdout) == user_agent_key(IPHONE_SAFARI)
    assert 0 <= user_agent_key(IPHONE_SAFARI) < 2**63
    assert user_agent_key(IPHONE_SAFARI) != user_agent_key(IPAD_SAFARI)


def _seen(journey: Journey, user_agent: str, t: int) -> Journey:
    """``journey`` after a ping with ``user_agent``, saved and loaded as a worker does."""
    ping = validate_event({"event_id": f"e{t}", "type": "page_ping", "visitor_id": "v1",
                           "site_id": "shop", "ts": t, "url": "https://shop.example/",
                           "user_agent": user_agent})  # fmt: skip
    apply(journey, ping, t)
    return Journey.from_dict(orjson.loads(orjson.dumps(journey.to_dict())))


def test_a_journey_keeps_its_device_across_a_restart_without_parsing_again(
    parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.core.profile as profile

    journey = _seen(Journey("v1", "shop"), IPHONE_SAFARI, 1)
    assert journey.device == "mobile" and parses == [IPHONE_SAFARI]

    monkeypatch.setattr(profile, "_devices", _empty_cache())  # a new process: nothing cached
    journey = _seen(journey, IPHONE_SAFARI, 2)
    assert journey.device == "mobile" and parses == [IPHONE_SAFARI]
    assert known_device(IPHONE_SAFARI) == "mobile"  # and the process knows it now


def test_a_journey_whose_user_agent_changed_is_not_given_the_old_device(
    parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.core.profile as profile

    # The iPhone's device is known to the process, so the journey keeps its key; then the
    # visitor's user agent changes to a known tablet, then to a new desktop one.
    device_of(IPAD_SAFARI)
    journey = _seen(Journey("v1", "shop"), IPHONE_SAFARI, 1)
    journey = _seen(journey, IPAD_SAFARI, 2)
    assert journey.device == "tablet"
    monkeypatch.setattr(profile, "_devices", _empty_cache())
    journey = _seen(journey, IPHONE_SAFARI, 3)  # the old key must not answer "tablet"
    assert journey.device == "mobile"
    # Same class, another user agent: the key may stay, the device is still right.
    journey = _seen(journey, ANDROID_PHONE_CHROME, 4)
    monkeypatch.setattr(profile, "_devices", _empty_cache())
    assert _seen(journey, IPAD_SAFARI, 5).device == "tablet"
    assert parses == [IPAD_SAFARI, IPHONE_SAFARI, IPHONE_SAFARI, ANDROID_PHONE_CHROME,
                      IPAD_SAFARI]  # fmt: skip


def test_a_journey_saved_before_it_kept_a_key_still_loads() -> None:
    journey = Journey("v1", "shop")
    journey.device = "tablet"
    data = journey.to_dict()
    del data["ua_key"]
    assert _seen(Journey.from_dict(data), IPHONE_SAFARI, 1).device == "mobile"


# --- landing --------------------------------------------------------------------------


def test_landing_attributes_take_utm_from_the_query_and_the_referrer_host() -> None:
    url = (
        "https://shop.example/pricing?utm_source=news%20letter&utm_medium=email"
        "&utm_campaign=spring+sale&utm_term=x&plan=pro#faq"
    )
    assert landing_attributes(url, "https://WWW.Google.CO.JP:443/search?q=a") == {
        "utm_source": "news letter",
        "utm_medium": "email",
        "utm_campaign": "spring sale",
        "referrer_host": "www.google.co.jp",
    }


@pytest.mark.parametrize(
    ("url", "referrer", "expected"),
    [
        ("https://shop.example/", None, {}),
        ("https://shop.example/", "", {}),
        ("https://shop.example/?utm_source=ads", None, {"utm_source": "ads"}),
        ("https://shop.example/?utm_source=&utm_medium=cpc", None, {"utm_medium": "cpc"}),
        ("https://shop.example/?utm_source=a&utm_source=b", None, {"utm_source": "a"}),
        ("https://shop.example/#utm_source=ads", None, {}),  # a fragment is not the query
        ("https://[oops/?utm_source=ads", "https://[oops/", {}),  # unparseable: nothing
        ("https://shop.example/", "android-app://com.slack/", {"referrer_host": "com.slack"}),
        ("https://shop.example/", "not a url", {}),
    ],
)
def test_landing_attributes_edge_cases(
    url: str, referrer: str | None, expected: dict[str, str]
) -> None:
    assert landing_attributes(url, referrer) == expected


# --- locale ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "locales", "expected"),
    [
        ("ja", {"ja": "…"}, "ja"),
        ("ja-JP", {"ja": "…"}, "ja"),
        ("JA-jp", {"ja": "…", "ja-JP": "…"}, "ja-JP"),  # exact beats primary
        ("ja-JP", {"ja-jp": "…"}, "ja-jp"),
        ("ja_JP", {"ja-JP": "…"}, "ja-JP"),
        ("ja", {"ja-JP": "…", "en": "…"}, "ja-JP"),
        ("pt", {"pt-PT": "…", "pt-BR": "…"}, "pt-BR"),  # several: the first sorted
        ("pt-AO", {"pt-PT": "…", "pt-BR": "…"}, "pt-BR"),
        ("de", {"ja": "…", "en": "…"}, None),
        (None, {"ja": "…"}, None),
        ("", {"ja": "…"}, None),
        ("ja", {}, None),
        (7, {"ja": "…"}, None),  # attributes are any JSON: not text, no locale
        (True, {"ja": "…"}, None),
        (["ja"], {"ja": "…"}, None),
    ],
)
def test_pick_locale(language: object, locales: dict[str, str], expected: str | None) -> None:
    assert pick_locale(language, locales) == expected


# --- templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "rendered"),
    [
        ("Hi {first_name|there}, any questions?", {"first_name": "Aki"}, "Hi Aki, any questions?"),
        ("Hi {first_name|there}, any questions?", {}, "Hi there, any questions?"),
        ("Hi {first_name|there}!", {"first_name": None}, "Hi there!"),
        ("{first_name|}さん", {}, "さん"),
        ("{name}", {}, ""),
        ("{vip}/{visits}/{score}", {"vip": True, "visits": 3, "score": 2.5}, "true/3/2.5"),
        ("no placeholders", {"x": 1}, "no placeholders"),
    ],
)
def test_template_renders(text: str, values: dict[str, object], rendered: str) -> None:
    assert Template.of(text).render(values) == rendered


def test_malformed_template_is_refused() -> None:
    with pytest.raises(ValueError, match="not closed"):
        Template.of("Hi {first_name")


VALUES = st.dictionaries(
    st.sampled_from(["a", "b", "first_name"]),
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
)


@given(st.sampled_from(["{a}{b|x}", "Hi {first_name|there}!", "{a|}-{a}-{b}", "plain"]), VALUES)
def test_template_renders_like_render_template(text: str, values: dict[str, object]) -> None:
    assert Template.of(text).render(values) == render_template(text, values)


def test_warm_up_tries_each_device_class_and_leaves_the_cache_alone(
    parses: list[str],
) -> None:
    import streams.core.profile as profile

    profile.warm_up()
    assert parses == list(profile.SAMPLE_AGENTS)  # each parsed once
    assert all(known_device(ua) is None for ua in profile.SAMPLE_AGENTS)  # none cached
    classes = {device_of(ua) for ua in profile.SAMPLE_AGENTS}
    assert classes == {"desktop", "mobile", "tablet"}
