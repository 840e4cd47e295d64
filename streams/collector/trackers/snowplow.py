"""The Snowplow tracker protocol: ``POST /com.snowplowanalytics.snowplow/tp2`` and ``GET /i``.

Each event is a flat object of names and string values (``e``, ``eid``, ``aid``,
``duid``, ``dtm``, ``url``, ...). Page views, page pings, structured and self-describing
events map to ClickEvents; e-commerce events (``tr``, ``ti``) are accepted and counted as
ignored. A page ping that carries its scroll offset, viewport and document size also
gives a ``scroll`` event.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

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
    join,
    primary_language,
    raise_if,
)

PAYLOAD_SCHEMA: Final = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-"
IGNORED: Final = frozenset({"tr", "ti"})  # e-commerce transactions and their items
_SIZE: Final = re.compile(r"(\d{1,7})x(\d{1,7})")

Mapped = list[tuple[dict[str, Any], dict[str, str]]]  # (ClickEvent fields, field -> source)


def from_snowplow_post(body: Any, received: Received) -> Batch:
    """A tp2 POST: ``{"schema": "iglu:...payload_data/...", "data": [{name: value}]}``."""
    if not isinstance(body, dict):
        raise InvalidEvent([("", f"must be a payload_data object, got {json_type(body)}")])
    schema, data = body.get("schema"), body.get("data")
    if not isinstance(schema, str) or not schema.startswith(PAYLOAD_SCHEMA):
        want = PAYLOAD_SCHEMA + "0-4"
        raise InvalidEvent([("schema", f"must be {want!r} (1-0-x), got {shown(schema)}")])
    if not isinstance(data, list) or not data:
        raise InvalidEvent([("data", "must be a non-empty list of events")])
    return _events(data, "data[{}]", received)


def from_snowplow_get(params: Mapping[str, str], received: Received) -> Batch:
    """The ``GET /i`` pixel: one event in the query string."""
    return _events([dict(params)], "", received)


def _events(payloads: list[Any], prefix: str, received: Received) -> Batch:
    problems: Problems = []
    events: list[ClickEvent] = []
    paths: list[str] = []
    ignored = 0
    for i, payload in enumerate(payloads):
        at = prefix.format(i)
        try:
            mapped = _event(_strings(payload), received)
        except InvalidEvent as exc:
            problems.extend((join(at, path), msg) for path, msg in exc.problems)
            continue
        ignored += not mapped
        for fields, origin in mapped:
            if collect(fields, origin, at, events, problems):
                paths.append(at)
    raise_if(problems)
    return Batch(events, paths, "aid", ignored)


def _strings(payload: Any) -> dict[str, str]:
    if not isinstance(payload, dict):
        got = json_type(payload)
        raise InvalidEvent([("", f"must be an object of names and values, got {got}")])
    out = {}
    for name, value in payload.items():
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = str(value)  # trackers send strings; numbers are read as such
        elif value is not None:
            raise InvalidEvent([(name, f"must be a string, got {json_type(value)}")])
    return out


def _event(p: dict[str, str], received: Received) -> Mapped:
    kind = p.get("e")
    if kind in IGNORED:
        return []
    if kind not in ("pv", "pp", "se", "ue"):
        want = "pv, pp, se or ue (tr and ti are accepted and ignored)"
        raise InvalidEvent([("e", f"must be {want}, got {shown(kind)}")])
    visitor_field = next((k for k in ("duid", "uid", "tnuid", "nuid") if p.get(k)), None)
    visitor = p[visitor_field] if visitor_field else received.network_id
    if not visitor:
        raise InvalidEvent([("duid", "is required (or uid, tnuid, or the sp cookie)")])
    if not p.get("aid"):
        raise InvalidEvent([("aid", "is required: the site id")])
    # A true timestamp (ttm) is the site's own statement of when: never corrected.
    ts_field = "ttm" if p.get("ttm") else "dtm" if p.get("dtm") else None
    sent = _digits(p["stm"]) if p.get("stm") else None
    if ts_field == "dtm" and isinstance(sent, str):
        raise InvalidEvent([("stm", f"must be epoch milliseconds, got {shown(sent)}")])
    origin = {"event_id": "eid", "visitor_id": visitor_field or "sp", "site_id": "aid",
              "session_id": "sid", "ts": ts_field or "dtm", "url": "url", "title": "page",
              "referrer": "refr", "user_agent": "ua"}  # fmt: skip
    fields: dict[str, Any] = {
        "event_id": p.get("eid") or derived_id("sp", {k: v for k, v in p.items() if k != "stm"}),
        "visitor_id": visitor,
        "site_id": p["aid"],
        "ts": _digits(p[ts_field]) if ts_field else received.now_ms,
    }
    for name, key in (("session_id", "sid"), ("url", "url"), ("title", "page"),
                      ("referrer", "refr"), ("user_agent", "ua")):  # fmt: skip
        if p.get(key):
            fields[name] = p[key]
    if visitor_field == "duid" and p.get("uid"):
        fields["attributes"] = {"user_id": p["uid"]}
    if kind == "pv":
        fields["type"] = "page_view"
    elif kind == "pp":
        fields["type"] = "page_ping"
    elif kind == "se":
        fields["type"], origin["name"] = "custom", "se_ac"
        if p.get("se_ac"):
            fields["name"] = p["se_ac"]
    else:
        fields.update(type="custom", name=_schema_name(p))
        origin["name"] = "ue_px" if "ue_px" in p else "ue_pr"
    finish(fields, received, sent if isinstance(sent, int) else None,
           own_language=primary_language(p.get("lang")), fix_clock=ts_field == "dtm")  # fmt: skip
    mapped: Mapped = [(fields, origin)]
    pct = _scroll_pct(p) if kind == "pp" else None
    if pct is not None:
        scroll = {**fields, "type": "scroll", "event_id": f"{fields['event_id']}.scroll",
                  "scroll_pct": pct}  # fmt: skip
        mapped.append((scroll, {**origin, "scroll_pct": "pp_may"}))
    return mapped


def _schema_name(p: dict[str, str]) -> str:
    """The event name of a self-describing event's schema (``iglu:vendor/NAME/...``)."""
    if "ue_pr" in p:
        where, raw = "ue_pr", p["ue_pr"].encode()
    elif "ue_px" in p:
        where, text = "ue_px", p["ue_px"]
        try:  # base64url, padding optional; some trackers send plain base64
            raw = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "==")
        except (binascii.Error, ValueError) as exc:
            raise InvalidEvent([(where, "must be base64url-encoded JSON")]) from exc
    else:
        raise InvalidEvent([("ue_pr", "is required for e=ue (or ue_px)")])
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([(where, f"must be JSON: {exc}")]) from exc
    inner = envelope.get("data") if isinstance(envelope, dict) else None
    schema = inner.get("schema") if isinstance(inner, dict) else None
    parts = schema.split("/") if isinstance(schema, str) else []
    if len(parts) != 4 or not parts[0].startswith("iglu:") or not parts[1]:
        want = "a self-describing event {'data': {'schema': 'iglu:vendor/name/jsonschema/1-0-0'}}"
        raise InvalidEvent([(where, f"must be {want}")])
    return parts[1]


def _scroll_pct(p: dict[str, str]) -> float | None:
    """How far down the page the visitor has seen: (pp_may + viewport) / document."""
    viewport, document = _SIZE.fullmatch(p.get("vp", "")), _SIZE.fullmatch(p.get("ds", ""))
    max_y = _digits(p.get("pp_may", ""))
    if not (viewport and document and isinstance(max_y, int)) or int(document[2]) <= 0:
        return None
    seen = (max(max_y, 0) + int(viewport[2])) / int(document[2]) * 100
    return round(min(seen, 100.0), 1)


def _digits(text: str) -> int | str:
    """Snowplow's epoch-ms strings as int; anything else stays as it was, for the 400."""
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isascii() and digits.isdigit() and len(digits) < 19 else text
