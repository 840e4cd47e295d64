"""Segment's HTTP tracking API: ``/v1/page``, ``/v1/track``, ``/v1/identify``, ``/v1/batch``.

The site comes from the write key (the collector resolves it); the visitor is the
anonymous id, else the user id. ``page`` is a ``page_view``, ``track`` a ``custom`` event
named by ``event``, ``identify`` an ``identify`` whose traits become attributes;
``screen``, ``group`` and ``alias`` are accepted and counted as ignored.
"""

from __future__ import annotations

from typing import Any, Final

from schemas._problems import json_type, shown
from schemas.errors import InvalidEvent
from schemas.events import ClickEvent
from streams.collector.trackers.common import (
    Batch,
    Problems,
    Received,
    collect,
    derived_id,
    finish,
    instant,
    join,
    primary_language,
    raise_if,
)

IGNORED: Final = frozenset({"screen", "group", "alias"})
KINDS: Final = ("page", "track", "identify")


def from_segment(body: Any, kind: str | None, site_id: str, received: Received) -> Batch:
    """One message of ``kind`` (``/v1/page`` ...) or, with None, a ``/v1/batch`` body."""
    if not isinstance(body, dict):
        raise InvalidEvent([("", f"must be a JSON object, got {json_type(body)}")])
    if kind is None:
        messages, prefix = body.get("batch"), "batch[{}]"
        if not isinstance(messages, list) or not messages:
            raise InvalidEvent([("batch", "must be a non-empty list of messages")])
    else:
        messages, prefix = [{**body, "type": kind}], ""
    sent = instant(body.get("sentAt"), "sentAt")
    problems: Problems = []
    events: list[ClickEvent] = []
    paths: list[str] = []
    ignored = 0
    for i, message in enumerate(messages):
        at = prefix.format(i)
        try:
            mapped = _message(message, site_id, sent, received)
        except InvalidEvent as exc:
            problems.extend((join(at, path), msg) for path, msg in exc.problems)
            continue
        if mapped is None:
            ignored += 1
        elif collect(*mapped, at, events, problems):
            paths.append(at)
    raise_if(problems)
    return Batch(events, paths, "", ignored)


def _message(
    m: Any, site_id: str, batch_sent: int | None, received: Received
) -> tuple[dict[str, Any], dict[str, str]] | None:
    if not isinstance(m, dict):
        raise InvalidEvent([("", f"must be a message object, got {json_type(m)}")])
    kind = m.get("type")
    if not isinstance(kind, str):
        raise InvalidEvent([("type", f"must be page, track or identify, got {shown(kind)}")])
    if kind in IGNORED:
        return None
    if kind not in KINDS:
        want = "page, track or identify (screen, group and alias are accepted and ignored)"
        raise InvalidEvent([("type", f"must be {want}, got {shown(kind)}")])
    context = _object(m, "context")
    page, properties = _object(context, "page", "context."), _object(m, "properties")
    anonymous, user = _id(m, "anonymousId"), _id(m, "userId")
    if anonymous is None and user is None:
        raise InvalidEvent([("anonymousId", "is required (or userId)")])
    ts_field = "timestamp" if m.get("timestamp") is not None else "originalTimestamp"
    ts = m.get(ts_field)
    origin = {"event_id": "messageId", "visitor_id": "anonymousId" if anonymous else "userId",
              "ts": ts_field, "user_agent": "context.userAgent", "attributes": "traits",
              "name": "event"}  # fmt: skip
    fields: dict[str, Any] = {
        "event_id": m.get("messageId") or derived_id("seg", m),
        "visitor_id": anonymous or user,
        "site_id": site_id,
        "ts": received.now_ms if ts is None else ts,
    }
    attributes: dict[str, Any] = {} if user is None else {"user_id": user}
    if kind == "identify":
        attributes.update(_flat(_object(m, "traits")))
    if attributes:
        fields["attributes"] = attributes
    if context.get("userAgent"):
        fields["user_agent"] = context["userAgent"]
    for key in ("url", "title", "referrer"):
        if page.get(key) is not None:
            fields[key], origin[key] = page[key], f"context.page.{key}"
        elif kind == "page" and properties.get(key) is not None:
            fields[key], origin[key] = properties[key], f"properties.{key}"
    if kind == "page":
        fields["type"] = "page_view"
        if "url" not in fields:
            raise InvalidEvent([("context.page.url", "is required (or properties.url)")])
        if "title" not in fields and m.get("name") is not None:
            fields["title"], origin["title"] = m["name"], "name"
    elif kind == "track":
        fields["type"] = "custom"
        if m.get("event") is not None:
            fields["name"] = m["event"]
    else:
        fields["type"] = "identify"
    sent = instant(m["sentAt"], "sentAt") if m.get("sentAt") is not None else batch_sent
    locale = context.get("locale")
    language = primary_language(locale) if isinstance(locale, str) else None
    finish(fields, received, sent, own_language=language, fix_clock=ts is not None)
    return fields, origin


def _object(parent: dict[str, Any], name: str, at: str = "") -> dict[str, Any]:
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent([(at + name, f"must be an object, got {json_type(value)}")])
    return value


def _id(message: dict[str, Any], name: str) -> str | None:
    # Segment ids may be numbers (the libraries send them as text); "" means none.
    value = message.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, str):
        return value or None
    raise InvalidEvent([(name, f"must be a string, got {json_type(value)} {shown(value)}")])


def _flat(traits: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Traits as attributes: nested objects as dotted names; lists are left out."""
    out: dict[str, Any] = {}
    for name, value in traits.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{name}."))
        elif not isinstance(value, list):
            out[prefix + name] = value
    return out
