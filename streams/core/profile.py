"""The visitor's derived profile and the rendering of invitation messages.

Owns: ``device`` from the user agent, the landing attributes (``utm_*``,
``referrer_host``), the choice of a message locale for the visitor's language, and
message templates compiled once per rule.

Device classes come from Matomo's device-detector rules (the ``device-detector``
package): smartphones, phablets and feature phones are ``mobile``; tablets are ``tablet``;
everything else is ``desktop``: desktops, TVs, consoles, cars, wearables, bots (even a
bot that claims to be a phone), and an unknown, empty or missing user agent. An iPad in
"desktop site" mode sends a macOS user agent and is ``desktop``: only client hints could
tell, and events do not carry them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from cachetools import FIFOCache
from device_detector import DeviceDetector

from schemas.templates import Placeholder, parse_template, render_parts

__all__ = [
    "SAMPLE_AGENTS",
    "UA_CACHE_SIZE",
    "UTM_KEYS",
    "Template",
    "device_of",
    "known_device",
    "landing_attributes",
    "pick_locale",
    "remember_device",
    "user_agent_key",
    "warm_up",
]

UA_CACHE_SIZE: Final = 10_000
UTM_KEYS: Final = ("utm_source", "utm_medium", "utm_campaign")
_MOBILE: Final = frozenset({"smartphone", "phablet", "feature phone"})


# --- Device ---------------------------------------------------------------------------


def device_of(user_agent: str | None) -> str:
    """``"desktop"``, ``"mobile"`` or ``"tablet"`` for a user agent (cached)."""
    if not user_agent:
        return "desktop"
    device = _devices.get(user_agent)
    if device is None:
        device = remember_device(user_agent, _parse_device(user_agent))
    return device


def warm_up() -> None:
    """Load device-detector's rules and compile the patterns common user agents try.

    device-detector compiles each pattern the first time a user agent reaches it: the
    first few distinct user agents of a process cost 0.2–1.5 s each, the later ones
    milliseconds. A worker calls this while it starts, so its first batch does not pay."""
    for user_agent in SAMPLE_AGENTS:
        _parse_device(user_agent)


def known_device(user_agent: str) -> str | None:
    """The device of ``user_agent`` if this process knows it already, without parsing."""
    if not user_agent:
        return "desktop"
    try:  # the engine asks on every event: one lookup, where FIFOCache.get takes three calls
        return _devices[user_agent]
    except KeyError:
        return None


def remember_device(user_agent: str, device: str) -> str:
    """Cache ``device`` for ``user_agent`` (known from elsewhere, e.g. a visitor's journey)."""
    _devices[user_agent] = device
    return device


def user_agent_key(user_agent: str) -> int:
    """A stable 63-bit digest of a user agent, for a journey to recognise its own.

    Python's ``hash`` of a string changes with every process; this one does not."""
    digest = hashlib.blake2b(user_agent.encode(errors="replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


# Common browsers, phones, tablets and a bot: what a site's first visitors send.
SAMPLE_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; Pixel 6) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)

# Parsing takes milliseconds and a site sees few distinct user agents at a time: cache by
# string, one short string per user agent (device-detector's own cache, check_cache,
# would keep whole parser objects). When full, the user agent cached first goes first: one
# in use comes back.
_devices: FIFOCache[str, str] = FIFOCache(maxsize=UA_CACHE_SIZE)


def _parse_device(user_agent: str) -> str:
    parsed = DeviceDetector(user_agent, check_cache=False).parse()
    if parsed.is_bot():
        return "desktop"
    kind = str(parsed.device_type())  # an enum or a plain string, depending on the rule
    if kind in _MOBILE:
        return "mobile"
    return "tablet" if kind == "tablet" else "desktop"


# --- Landing --------------------------------------------------------------------------


def landing_attributes(url: str, referrer: str | None) -> dict[str, str]:
    """``utm_*`` from the landing URL's query (non-empty ones) and ``referrer_host``."""
    found: dict[str, str] = {}
    try:
        query = urlsplit(url).query
    except ValueError:  # e.g. an unclosed "[" in the host; such a URL has no usable query
        query = ""
    if "utm_" in query:
        for key, value in parse_qsl(query):
            if key in UTM_KEYS and value and key not in found:  # the first one wins
                found[key] = value
    if referrer:
        try:
            host = urlsplit(referrer).hostname  # lower-cased, without port or user
        except ValueError:
            host = None
        if host:
            found["referrer_host"] = host
    return found


# --- Locale ---------------------------------------------------------------------------


def pick_locale(language: object, locales: Mapping[str, object]) -> str | None:
    """The key of ``locales`` to use for a visitor language such as ``ja-JP``, or None.

    In order: the same tag (case-insensitive), the visitor's primary subtag ("ja-JP" ->
    "ja"), then a locale with the visitor's primary subtag ("ja" -> "ja-JP"; the first in
    sorted order when several, so the choice never depends on key order). A language
    that is not text (a visitor may send ``"language": 7``) matches no locale.
    """
    if not isinstance(language, str) or not language or not locales:
        return None
    wanted = language.strip().replace("_", "-").lower()
    primary = wanted.partition("-")[0]
    by_lower = {key.lower(): key for key in locales}
    if wanted in by_lower:
        return by_lower[wanted]
    if primary in by_lower:
        return by_lower[primary]
    regional = sorted(key for key in locales if key.partition("-")[0].lower() == primary)
    return regional[0] if regional else None


# --- Templates ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A message template parsed once; ``render`` fills it like ``render_template``."""

    text: str
    parts: tuple[str | Placeholder, ...] = field(repr=False, compare=False)

    @classmethod
    def of(cls, text: str) -> Template:
        """Parse ``text``; raises ValueError when malformed (rules are validated first)."""
        return cls(text, parse_template(text))

    def render(self, values: Mapping[str, object]) -> str:
        """A known, non-null value wins, then the placeholder's default, then ''."""
        return render_parts(self.parts, values)
