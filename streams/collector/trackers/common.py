"""What every tracker mapping shares: the request's facts, clock correction, validation.

``finish`` fills what the request tells about the visitor (user agent, language,
country) and the site's presence window, and corrects a client clock that is off;
``collect`` validates the mapped fields with :func:`schemas.events.validate_event` and
renames the fields at fault back to the tracker's own names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from schemas._problems import json_type, shown
from schemas.errors import InvalidEvent
from schemas.events import ClickEvent, validate_event
from schemas.instants import MAX_MS, MIN_MS, parse_instant

MAX_PROBLEMS: Final = 20  # a 400 names this many faults at most
_UA_MAX: Final = 8192  # ClickEvent.user_agent's limit; a longer header is cut
_LANGUAGE: Final = re.compile(r"[A-Za-z]{2,3}")
_COUNTRY: Final = re.compile(r"[A-Z]{2}")
_NOT_A_COUNTRY: Final = frozenset({"XX", "ZZ", "T1"})  # proxies' "unknown" and "Tor"

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Received:
    """What the collector learned about one request, besides its body."""

    now_ms: int
    user_agent: str | None = None
    language: str | None = None  # primary tag from Accept-Language
    country: str | None = None  # from the trusted header
    sent_ms: int | None = None  # the client's send time (Beckon: the Beckon-Sent-At header)
    network_id: str | None = None  # Snowplow's network user id cookie (sp)
    max_skew_ms: int = 300_000
    # site -> presence_s for this request's protocol, from the sites file
    presence_s: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Batch:
    """A request's valid events, where in the request each came from, what was skipped."""

    events: list[ClickEvent]
    paths: list[str] = field(default_factory=list)  # per event, e.g. "data[2]" ("" for one)
    site_field: str = ""  # the tracker's name for the site: "site_id", "aid" (Segment: none)
    ignored: int = 0


# --- Request-level facts ---------------------------------------------------------------


def primary_language(accept_language: str | None) -> str | None:
    """The primary subtag of the preferred language: ``"ja-JP,en;q=0.5"`` -> ``"ja"``."""
    best, best_q = None, 0.0
    for part in (accept_language or "").split(",")[:32]:
        tag, _, params = part.partition(";")
        q = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                continue
        primary = tag.strip().partition("-")[0]
        if q > best_q and _LANGUAGE.fullmatch(primary):
            best, best_q = primary.lower(), q
    return best


def country_code(value: str | None) -> str | None:
    """An ISO 3166 alpha-2 code from a trusted header (``jp`` -> ``JP``), else None."""
    code = (value or "").strip().upper()
    return code if _COUNTRY.fullmatch(code) and code not in _NOT_A_COUNTRY else None


def corrected_ts(ts: int, sent_ms: int | None, now_ms: int, max_skew_ms: int) -> int | None:
    """The event time to use instead of ``ts`` when the client's clock is off, else None.

    With the client's send time, the clock's offset is ``now - sent``: beyond the skew
    allowed, ``ts`` moves by that offset (events buffered for a while keep their age).
    Without it, a ``ts`` further than the skew from ``now`` becomes ``now``. Nothing is
    later than ``now`` plus the skew.
    """
    fixed = ts
    if sent_ms is not None:
        offset = now_ms - sent_ms
        if abs(offset) > max_skew_ms:
            fixed = ts + offset
    elif abs(now_ms - ts) > max_skew_ms:
        fixed = now_ms
    if fixed > now_ms + max_skew_ms or fixed < MIN_MS:
        fixed = now_ms
    return None if fixed == ts else fixed


def instant(value: Any, where: str, *, strict: bool = True) -> int | None:
    """RFC 3339 text or epoch ms -> epoch ms; None when absent (or bad, unless strict)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and MIN_MS <= value <= MAX_MS:
        return value
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError as exc:
            if strict:
                raise InvalidEvent([(where, str(exc))]) from exc
            return None
    if strict:
        want = "RFC 3339 with an offset or epoch milliseconds"
        raise InvalidEvent([(where, f"must be {want}, got {json_type(value)} {shown(value)}")])
    return None


# --- Mapped fields -> ClickEvent ----------------------------------------------------------


def finish(
    fields: dict[str, Any],
    received: Received,
    sent_ms: int | None,
    *,
    own_language: str | None = None,
    fix_clock: bool = True,
) -> None:
    """Fill what the request tells about the visitor and the site's presence window (an
    event's own ``presence_s`` wins); correct a clock that is off."""
    if fields.get("user_agent") is None and received.user_agent:
        fields["user_agent"] = received.user_agent[:_UA_MAX]
    site = fields.get("site_id")
    if received.presence_s and isinstance(site, str) and fields.get("presence_s") is None:
        presence = received.presence_s.get(site)
        if presence is not None:
            fields["presence_s"] = presence
    attributes = fields.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        return  # not an object: validation names it
    attributes = dict(attributes or {})
    language = own_language or received.language
    if language and "language" not in attributes:
        attributes["language"] = language
    if received.country and "country" not in attributes:
        attributes["country"] = received.country
    ts = fields.get("ts")
    if fix_clock and isinstance(ts, int | str) and not isinstance(ts, bool):
        # Only a time that parses is corrected; a malformed one is the client's 400.
        parsed = instant(ts, "ts", strict=False)
        fixed = None
        if parsed is not None:
            fixed = corrected_ts(parsed, sent_ms, received.now_ms, received.max_skew_ms)
        if parsed is not None and fixed is not None:
            fields["ts"] = fixed
            attributes["clock_corrected"] = True
            attributes["client_ts"] = parsed
    if attributes:
        fields["attributes"] = attributes


def collect(
    fields: dict[str, Any],
    origin: Mapping[str, str],
    at: str,
    events: list[ClickEvent],
    problems: Problems,
) -> bool:
    """Validate one mapped event into ``events``, or its faults (client's names) into
    ``problems``; True when it was valid."""
    try:
        events.append(validate_event(fields))
        return True
    except InvalidEvent as exc:
        problems.extend((join(at, _source(path, origin)), msg) for path, msg in exc.problems)
        return False


def _source(path: str, origin: Mapping[str, str]) -> str:
    """A ClickEvent field path in the client's terms (``attributes.plan`` -> ``traits.plan``)."""
    head, dot, rest = path.partition(".")
    head = origin.get(head, head)
    return f"{head}.{rest}" if dot else head


def join(at: str, path: str) -> str:
    """``join("data[2]", "url")`` -> ``"data[2].url"``; either may be empty."""
    if not at:
        return path
    return f"{at}{'' if path.startswith('[') else '.'}{path}" if path else at


def raise_if(problems: Problems) -> None:
    if problems:
        raise InvalidEvent(problems[:MAX_PROBLEMS])


def derived_id(prefix: str, message: Any) -> str:
    """An event id for a message that has none: the same message retried gets the same
    id, so the engine drops the copy."""
    digest = hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{prefix}-{digest[:32]}"
