"""The delivery service's pure parts: expiry, the per-visitor hold, routing, SSE framing."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from schemas.events import parse_event
from schemas.invitations import parse_instant
from streams.delivery.hub import (
    Hub,
    Pending,
    is_expired,
    page_view_of,
    shown_event,
    sse_message,
)
from tests.unit.delivery.delivery_helpers import T0, invitation


def test_an_invitation_expires_only_after_its_expires_at() -> None:
    inv = invitation(expires="2026-12-01T09:01:00.000Z")
    at = parse_instant("2026-12-01T09:01:00.000Z")
    assert not is_expired(inv, at)
    assert is_expired(inv, at + 1)


def test_pending_holds_per_visitor_and_gives_them_back_oldest_first() -> None:
    pending = Pending()
    assert pending.add(invitation(2), T0)
    assert pending.add(invitation(1), T0)
    assert pending.add(invitation(3, visitor="v2"), T0)
    assert [i.invitation_id for i in pending.take("v1", T0)] == ["inv-1", "inv-2"]
    assert pending.take("v1", T0) == []
    assert len(pending) == 1


def test_pending_refuses_expired_and_drops_what_expires_while_held() -> None:
    pending = Pending()
    late = T0 + 120_000
    assert not pending.add(invitation(1, expires="2026-12-01T09:00:30.000Z"), T0 + 30_001)
    pending.add(invitation(2, expires="2026-12-01T09:01:00.000Z"), T0)
    pending.add(invitation(3, expires="2026-12-01T09:05:00.000Z"), T0)
    assert pending.prune(late) == 1
    assert [i.invitation_id for i in pending.take("v1", late)] == ["inv-3"]


def test_pending_keeps_the_latest_few_per_visitor() -> None:
    pending = Pending(per_visitor=2)
    for n in (1, 2, 3):
        pending.add(invitation(n), T0)
    assert [i.invitation_id for i in pending.take("v1", T0)] == ["inv-2", "inv-3"]


def test_hub_holds_until_a_page_opens_then_pushes_to_the_latest_page() -> None:
    hub = Hub()
    assert hub.offer(invitation(1), T0) == "held"
    first = hub.connect("v1", T0)
    assert first.get_nowait().invitation_id == "inv-1"
    second = hub.connect("v1", T0)
    assert hub.offer(invitation(2), T0) == "pushed"
    assert second.qsize() == 1 and first.empty()
    assert hub.offer(invitation(3, visitor="v2"), T0) == "held"


def test_hub_drops_expired_and_already_shown_invitations() -> None:
    hub = Hub()
    hub.connect("v1", T0)
    assert hub.offer(invitation(1, expires="2026-12-01T09:00:30.000Z"), T0 + 30_001) == "expired"
    assert hub.mark_shown("inv-2")
    assert not hub.mark_shown("inv-2")
    assert hub.offer(invitation(2), T0) == "shown"
    assert hub.counts["expired"] == 1 and hub.counts["shown"] == 1


def test_the_hub_forgets_the_first_shown_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.delivery.hub as hub_module

    monkeypatch.setattr(hub_module, "MAX_REMEMBERED_SHOWN", 2)
    hub = Hub()
    assert hub.mark_shown("inv-1") and hub.mark_shown("inv-2")
    assert hub.was_shown("inv-1")  # a read does not keep it: first in, first out
    assert hub.mark_shown("inv-3")
    assert not hub.was_shown("inv-1") and hub.was_shown("inv-2") and hub.was_shown("inv-3")


def test_what_a_closed_page_did_not_get_goes_to_another_page_or_is_held() -> None:
    hub = Hub()
    older, newer = hub.connect("v1", T0), hub.connect("v1", T0)
    hub.offer(invitation(1), T0)
    hub.disconnect("v1", newer, T0)
    assert older.get_nowait().invitation_id == "inv-1"
    hub.offer(invitation(2), T0)
    hub.disconnect("v1", older, T0)
    assert hub.stats()["open_pages"] == 0
    assert [i.invitation_id for i in hub.pending.take("v1", T0)] == ["inv-2"]


def test_close_all_ends_every_open_page() -> None:
    hub = Hub()
    pages = [hub.connect("v1", T0), hub.connect("v2", T0)]
    hub.close_all()
    assert [asyncio.run(page.get()) for page in pages] == [None, None]


def test_sse_message_frames_id_event_and_each_data_line() -> None:
    assert sse_message(b'{"a":1}', event="invitation", id="inv-1") == (
        b'id: inv-1\nevent: invitation\ndata: {"a":1}\n\n'
    )
    assert sse_message(b"one\r\ntwo") == b"data: one\ndata: two\n\n"
    assert sse_message(b"x", id="a\nb") == b"id: a b\ndata: x\n\n"


def test_the_page_gets_what_it_shows_and_answers_but_not_the_engines_context() -> None:
    sent = orjson.loads(page_view_of(invitation(1)))
    assert sent == {
        "invitation_id": "inv-1",
        "rule_id": "pricing-hesitation",
        "queue": "sales",
        "message": "Any questions about our plans?",
        "locale": None,
        "url": "https://shop.example/pricing",
        "triggered_at": "2026-12-01T09:00:01.000Z",
        "expires_at": "2026-12-01T09:01:00.000Z",
    }


def test_shown_is_a_valid_click_event_with_an_id_derived_from_the_invitation() -> None:
    event = shown_event(invitation(1), T0 + 1500)
    parsed = parse_event(orjson.dumps(event))
    assert parsed.type == "invitation_response"
    assert (parsed.invitation_id, parsed.response, parsed.ts) == ("inv-1", "shown", T0 + 1500)
    assert (parsed.visitor_id, parsed.session_id, parsed.site_id) == ("v1", "s1", "shop")
    assert shown_event(invitation(1), T0 + 9000)["event_id"] == event["event_id"]
    assert shown_event(invitation(2), T0)["event_id"] != event["event_id"]
