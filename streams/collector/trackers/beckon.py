"""Beckon's own JSON (``POST /v1/events``): ClickEvents as the contract defines them."""

from __future__ import annotations

from typing import Any

from schemas._problems import json_type
from schemas.errors import InvalidEvent
from schemas.events import ClickEvent
from streams.collector.trackers.common import Batch, Problems, Received, collect, finish, raise_if


def from_beckon(body: Any, received: Received) -> Batch:
    """One ClickEvent object or a non-empty list of them; faults at ``[i].field``."""
    items, prefix = (body, "[{}]") if isinstance(body, list) else ([body], "")
    if not items:
        raise InvalidEvent([("", "must be an event object or a non-empty list of them")])
    problems: Problems = []
    events: list[ClickEvent] = []
    for i, item in enumerate(items):
        at = prefix.format(i)
        if not isinstance(item, dict):
            problems.append((at, f"must be an event object, got {json_type(item)}"))
            continue
        fields = dict(item)
        finish(fields, received, received.sent_ms)
        collect(fields, {}, at, events, problems)
    raise_if(problems)
    return Batch(events, [prefix.format(i) for i in range(len(events))], "site_id")
