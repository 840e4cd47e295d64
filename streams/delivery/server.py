"""The reference chat delivery service: invitations from Kafka to the visitor's open page.

    beckon delivery      # http://localhost:8000/: the demo shop, /beckon.js, the SSE stream

It is the example a chat platform copies to integrate:

- a thread runs :class:`streams.kafka.consumer.InvitationConsumer` (copies dropped) and hands
  each invitation to the event loop;
- :class:`Hub` drops expired invitations, pushes the others to the visitor's most recently
  opened page (``GET /v1/invitations/stream?visitor_id=…``, Server-Sent Events) and holds
  them, until they expire, for a visitor with no page open yet;
- an invitation written to a page is recorded once, as an ``invitation_response`` event
  with response ``shown`` on the clickstream topic, keyed by visitor.

The pure parts (``is_expired``, ``Pending``, ``sse_message``, ``page_view_of``,
``shown_event``, ``Hub``) take instants as arguments; only handlers and tasks read the clock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from schemas.invitations import Invitation, parse_instant
from streams.delivery import demo_shop
from streams.kafka.consumer import InvitationConsumer
from streams.metrics import serve_delivery
from streams.settings import Settings

log = logging.getLogger(__name__)

SNIPPET: Final = Path(__file__).resolve().parent / "static" / "beckon.js"
MAX_HELD_PER_VISITOR: Final = 8  # a visitor never has more than a few live invitations
MAX_REMEMBERED_SHOWN: Final = 100_000
PRUNE_EVERY_S: Final = 5.0
RETRY_MS: Final = 3000  # how soon a browser's EventSource reconnects after a drop
KEEPALIVE: Final = b": keep-alive\n\n"
# shown events get ids derived from the invitation: a second `shown` is a duplicate.
_SHOWN_NAMESPACE: Final = uuid.UUID("0b6c1f3e-2f59-4f0e-9a44-5d3e6a1c7b21")
# What a page receives: enough to show and answer it, none of the engine's context.
PAGE_FIELDS: Final = ("invitation_id", "rule_id", "queue", "message", "locale", "url",
                      "triggered_at", "expires_at")  # fmt: skip


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
        self._shown: OrderedDict[str, None] = OrderedDict()
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
        if len(self._shown) > MAX_REMEMBERED_SHOWN:
            self._shown.popitem(last=False)
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


# --- Kafka at the edges: the consumer thread, the `shown` recorder ----------------------


class ShownRecorder:
    """Publishes `shown` events on one thread of its own, so the event loop never waits."""

    def __init__(self, settings: Settings) -> None:
        from streams.kafka.publisher import Publisher

        self._publisher = Publisher(settings)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="beckon-shown")

    def record(self, invitation: Invitation, at_ms: int) -> None:
        self._pool.submit(self._send, shown_event(invitation, at_ms))

    def _send(self, event: dict[str, Any]) -> None:
        try:
            self._publisher.publish(event)
            self._publisher.flush(timeout=30)
        except Exception:  # never lose the thread: log and go on with the next one
            log.exception("could not record %s as shown", event["invitation_id"])

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._publisher.close()


def consume(
    consumer: InvitationConsumer, stop: threading.Event, hand_over: Callable[[Invitation], None]
) -> None:
    """Poll until ``stop`` is set, handing each invitation over (runs on its own thread)."""
    from kafka.errors import KafkaError

    while not stop.is_set():
        try:
            invitations = consumer.poll(timeout_ms=500)
        except (KafkaError, OSError):
            log.exception("polling %s failed; trying again in 2 s", consumer.topic)
            stop.wait(2)
            continue
        for invitation in invitations:
            hand_over(invitation)


HUB: Final = web.AppKey("hub", Hub)
SETTINGS: Final = web.AppKey("settings", Settings)
RECORDER: Final = web.AppKey("recorder", ShownRecorder)
SNIPPET_BYTES: Final = web.AppKey("snippet", bytes)


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    """The consumer thread and the recorder, for as long as the app runs."""
    settings, hub, loop = app[SETTINGS], app[HUB], asyncio.get_running_loop()
    # earliest for a new group: an invitation written before the first start is still
    # delivered while it lives; the expired ones are dropped on the way.
    consumer = await asyncio.to_thread(
        InvitationConsumer, settings, group_id=settings.delivery_group, from_beginning=True
    )
    app[RECORDER] = await asyncio.to_thread(ShownRecorder, settings)

    def hand_over(invitation: Invitation) -> None:
        loop.call_soon_threadsafe(lambda: _log_route(hub, invitation))

    stop = threading.Event()
    thread = threading.Thread(
        target=consume, args=(consumer, stop, hand_over), name="beckon-invitations", daemon=True
    )
    thread.start()
    log.info("delivering invitations from %s (group %s)", consumer.topic, settings.delivery_group)
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)
        await asyncio.to_thread(consumer.close)
        await asyncio.to_thread(app[RECORDER].close)


def _log_route(hub: Hub, invitation: Invitation) -> None:
    outcome = hub.offer(invitation, now_ms())
    log.info("invitation %s for %s: %s", invitation.invitation_id, invitation.visitor_id, outcome)


async def _pruner(app: web.Application) -> AsyncIterator[None]:
    async def prune() -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            if dropped := app[HUB].pending.prune(now_ms()):
                app[HUB].counts["expired"] += dropped

    task = asyncio.create_task(prune())
    yield
    task.cancel()


async def _close_pages(app: web.Application) -> None:
    app[HUB].close_all()  # open streams end, so shutdown need not wait for them


# --- HTTP ---------------------------------------------------------------------------------

CORS: Final = {"Access-Control-Allow-Origin": "*"}  # no credentials: the visitor id is in the URL


async def stream(request: web.Request) -> web.StreamResponse:
    """GET /v1/invitations/stream?visitor_id=…: the visitor's invitations, as they come."""
    visitor_id = request.query.get("visitor_id", "")
    if not 1 <= len(visitor_id) <= 200:
        return web.json_response(
            {"error": "visitor_id: required, 1 to 200 characters"}, status=400, headers=CORS
        )
    hub, keepalive_s = request.app[HUB], request.app[SETTINGS].delivery_keepalive_s
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no", **CORS,
    })  # fmt: skip
    await response.prepare(request)
    outbox = hub.connect(visitor_id, now_ms())
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        await response.write(sse_message(orjson.dumps({"now": now_ms()}), event="ready"))
        while True:
            try:
                invitation = await asyncio.wait_for(outbox.get(), keepalive_s)
            except TimeoutError:
                await response.write(KEEPALIVE)
                continue
            if invitation is None:
                break
            if request.transport is None or request.transport.is_closing():
                outbox.put_nowait(invitation)  # the page is gone: disconnect re-routes it
                break
            await _push(request, response, invitation)
    except ConnectionError:
        pass  # the page went away; what it did not get is re-routed below
    finally:
        hub.disconnect(visitor_id, outbox, now_ms())
    return response


async def _push(request: web.Request, response: web.StreamResponse, invitation: Invitation) -> None:
    hub, at = request.app[HUB], now_ms()
    if is_expired(invitation, at) or hub.was_shown(invitation.invitation_id):
        return
    message = sse_message(page_view_of(invitation), event="invitation", id=invitation.invitation_id)
    await response.write(message)
    if hub.mark_shown(invitation.invitation_id):
        request.app[RECORDER].record(invitation, at)


async def snippet(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[SNIPPET_BYTES],
        content_type="application/javascript",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300", **CORS},
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", **request.app[HUB].stats()})


def build_app(settings: Settings) -> web.Application:
    """The service's aiohttp app: its start-up starts the consumer thread and the recorder."""
    app = web.Application()
    app[SETTINGS] = settings
    app[HUB] = Hub()
    app[SNIPPET_BYTES] = SNIPPET.read_bytes()
    app.router.add_get("/v1/invitations/stream", stream)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/beckon.js", snippet)
    demo_shop.add_routes(app, settings)
    serve_delivery(app, app[HUB])  # GET /metrics
    app.cleanup_ctx.extend((_kafka, _pruner))
    app.on_shutdown.append(_close_pages)
    return app


def run_delivery(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    host, port = settings.delivery_host, settings.delivery_port
    web.run_app(
        build_app(settings),
        host=host,
        port=port,
        print=lambda _: print(
            f"delivery: demo shop on http://{host}:{port}/, "
            f"invitations at /v1/invitations/stream, snippet at /beckon.js",
            flush=True,
        ),
        access_log_format='%a "%r" %s %b %Tf s',
        shutdown_timeout=5,
    )
