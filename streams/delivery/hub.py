"""The delivery service's pure parts: which open page gets an invitation, what is held.

No I/O and no clock: every instant is an argument, so the routing is unit-tested with
literal invitations and hand-set times.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

import orjson
from cachetools import FIFOCache

from schemas.invitations import Invitation, parse_instant

MAX_HELD_PER_VISITOR: Final = 8  # a visitor never has more than a few live invitations
MAX_REMEMBERED_SHOWN: Final = 100_000
# shown events get ids derived from the invitation: a second `shown` is a duplicate.
_SHOWN_NAMESPACE: Final = uuid.UUID("0b6c1f3e-2f59-4f0e-9a44-5d3e6a1c7b21")
# What a page receives: enough to show and answer it, none of the engine's context.
PAGE_FIELDS: Final = ("invitation_id", "rule_id", "queue", "message", "locale", "url",
                      "triggered_at", "expires_at")  # fmt: skip


def is_expired(invitation: Invitation, at_ms: int) -> bool:
    """True once ``expires_at`` is before ``at_ms``."""
    return parse_instant(invitation.expires_at) < at_ms


def sse_message(data: bytes, *, event: str | None = None, id: str | None = None) -> bytes:
    """One Server-Sent Events message (``data`` may hold several lines)."""
    lines = []
    if id is not None:
        lines.append(b"id: " + _one_line(id))
    if event is not None:
        lines.append(b"event: " + _one_line(event))
    lines += [b"data: " + line for line in data.replace(b"\r\n", b"\n").split(b"\n")]
    return b"\n".join(lines) + b"\n\n"


def _one_line(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode()


def page_view_of(invitation: Invitation) -> bytes:
    """The invitation as the page gets it (JSON)."""
    return orjson.dumps({name: getattr(invitation, name) for name in PAGE_FIELDS})


def shown_event(invitation: Invitation, at_ms: int) -> dict[str, Any]:
    """The ClickEvent that records that ``invitation`` reached an open page at ``at_ms``."""
    return {
        "event_id": str(uuid.uuid5(_SHOWN_NAMESPACE, invitation.invitation_id)),
        "type": "invitation_response",
        "visitor_id": invitation.visitor_id,
        "site_id": invitation.site_id,
        "session_id": invitation.session_id,
        "ts": at_ms,
        "url": invitation.url,
        "invitation_id": invitation.invitation_id,
        "response": "shown",
    }


class Pending:
    """Invitations held for visitors with no page open, until they expire."""

    def __init__(self, per_visitor: int = MAX_HELD_PER_VISITOR) -> None:
        self.per_visitor = per_visitor
        self._held: dict[str, dict[str, Invitation]] = {}  # visitor -> id -> invitation

    def add(self, invitation: Invitation, at_ms: int) -> bool:
        """Hold ``invitation``; False (and not held) when it has expired."""
        if is_expired(invitation, at_ms):
            return False
        held = self._held.setdefault(invitation.visitor_id, {})
        held[invitation.invitation_id] = invitation
        if len(held) > self.per_visitor:
            del held[next(iter(held))]  # the earliest to arrive
        return True

    def take(self, visitor_id: str, at_ms: int) -> list[Invitation]:
        """Remove and return the visitor's unexpired invitations, oldest first."""
        held = self._held.pop(visitor_id, {})
        live = [i for i in held.values() if not is_expired(i, at_ms)]
        return sorted(live, key=lambda i: i.triggered_at)

    def prune(self, at_ms: int) -> int:
        """Forget every expired invitation; returns how many."""
        dropped = 0
        for visitor_id in list(self._held):
            held = self._held[visitor_id]
            for invitation_id in [k for k, i in held.items() if is_expired(i, at_ms)]:
                del held[invitation_id]
                dropped += 1
            if not held:
                del self._held[visitor_id]
        return dropped

    def __len__(self) -> int:
        return sum(map(len, self._held.values()))


Outbox = asyncio.Queue[Invitation | None]  # one open page's invitations; None: close


class Hub:
    """Open pages by visitor, what is held for whom, what was shown. No I/O, no clock."""

    def __init__(self) -> None:
        self.pending = Pending()
        self._pages: dict[str, list[Outbox]] = {}  # visitor -> open pages, latest last
        # The ids pages got, the first shown forgotten first (a read does not keep one).
        self._shown: FIFOCache[str, None] = FIFOCache(maxsize=MAX_REMEMBERED_SHOWN)
        self.counts = {"received": 0, "expired": 0, "pushed": 0, "held": 0, "shown": 0,
                       "duplicate": 0}  # fmt: skip

    def offer(self, invitation: Invitation, at_ms: int) -> str:
        """Route one invitation: ``expired``, ``pushed`` (to the latest page) or ``held``."""
        self.counts["received"] += 1
        return self._route(invitation, at_ms)

    def _route(self, invitation: Invitation, at_ms: int) -> str:
        if is_expired(invitation, at_ms):
            outcome = "expired"
        elif self.was_shown(invitation.invitation_id):
            self.counts["duplicate"] += 1
            return "shown"
        elif pages := self._pages.get(invitation.visitor_id):
            pages[-1].put_nowait(invitation)
            outcome = "pushed"
        else:
            self.pending.add(invitation, at_ms)
            outcome = "held"
        self.counts[outcome] += 1
        return outcome

    def connect(self, visitor_id: str, at_ms: int) -> Outbox:
        """A page opened: its outbox, with what was held for the visitor already in it."""
        outbox: Outbox = asyncio.Queue()
        for invitation in self.pending.take(visitor_id, at_ms):
            outbox.put_nowait(invitation)
        self._pages.setdefault(visitor_id, []).append(outbox)
        return outbox

    def disconnect(self, visitor_id: str, outbox: Outbox, at_ms: int) -> None:
        """A page closed: what it did not get goes to another open page, or is held."""
        pages = self._pages.get(visitor_id, [])
        if outbox in pages:
            pages.remove(outbox)
        if not pages:
            self._pages.pop(visitor_id, None)
        while not outbox.empty():
            if (invitation := outbox.get_nowait()) is not None:
                self._route(invitation, at_ms)

    def mark_shown(self, invitation_id: str) -> bool:
        """Remember that a page got it; False if one already had."""
        if invitation_id in self._shown:
            return False
        self._shown[invitation_id] = None
        self.counts["shown"] += 1
        return True

    def was_shown(self, invitation_id: str) -> bool:
        return invitation_id in self._shown

    def close_all(self) -> None:
        for pages in self._pages.values():
            for outbox in pages:
                outbox.put_nowait(None)

    def stats(self) -> dict[str, int]:
        return {**self.counts, "open_pages": sum(map(len, self._pages.values())),
                "visitors": len(self._pages), "pending": len(self.pending)}  # fmt: skip
