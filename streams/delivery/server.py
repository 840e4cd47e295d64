"""The reference chat delivery service: invitations from Kafka to the visitor's open page.

    beckon delivery      # http://localhost:8000/: the demo shop, /beckon.js, the SSE stream

It is the example a chat platform copies to integrate:

- a thread runs :class:`streams.kafka.consumer.InvitationConsumer` (copies dropped) and hands
  each invitation to the event loop;
- :class:`Hub` drops expired invitations, pushes the others to the visitor's most recently
  opened page (``GET /v1/invitations/stream?visitor_id=…``, Server-Sent Events) and holds
  them, until they expire, for a visitor with no page open yet;
- an invitation written to a page is recorded once, as an ``invitation_response`` event
  with response ``shown`` on the clickstream topic, keyed by visitor;
- every ``BECKON_DELIVERY_CAPACITY_EVERY_S``, and at once when agents come or go, each
  queue's capacity goes to ``beckon.capacity``: agent consoles connected to
  ``GET /v1/agents/stream?queue=…`` plus simulated agents (:mod:`streams.delivery.agents`).

The pure parts are in ``streams.delivery.hub``; only this module's handlers and tasks
read the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from schemas.invitations import Invitation
from streams.clock import now_ms
from streams.delivery import demo_shop
from streams.delivery.agents import Agents
from streams.delivery.hub import Hub, is_expired, page_view_of, shown_event, sse_message
from streams.delivery.metrics import serve_delivery
from streams.kafka.consumer import InvitationConsumer
from streams.settings import Settings

log = logging.getLogger(__name__)

SNIPPET: Final = Path(__file__).resolve().parent / "static" / "beckon.js"
PRUNE_EVERY_S: Final = 5.0
RETRY_MS: Final = 3000  # how soon a browser's EventSource reconnects after a drop
KEEPALIVE: Final = b": keep-alive\n\n"


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
AGENTS: Final = web.AppKey("agents", Agents)
CAPACITY_CHANGED: Final = web.AppKey("capacity_changed", asyncio.Event)
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


async def _capacity(app: web.Application) -> AsyncIterator[None]:
    """Publish the queues' capacity every few seconds, and at once when agents change."""
    from kafka import KafkaProducer

    from schemas.capacity import validate_capacity
    from streams.kafka.capacity_topic import publish_capacity

    settings, agents, changed = app[SETTINGS], app[AGENTS], app[CAPACITY_CHANGED]
    producer = await asyncio.to_thread(
        KafkaProducer, **settings.kafka_python_config(), acks="all", linger_ms=5,
        client_id="beckon-delivery-capacity",
    )  # fmt: skip

    def send(records: list[dict[str, Any]]) -> None:
        for record in records:
            publish_capacity(producer, settings.topic_capacity, validate_capacity(record))
        producer.flush(10)

    async def publish() -> None:
        while True:
            records = agents.records(now_ms())
            if records:
                try:
                    await asyncio.to_thread(send, records)
                except Exception:  # Kafka away: the next round tries again
                    log.exception("could not publish capacity to %s", settings.topic_capacity)
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), settings.delivery_capacity_every_s)

    task = asyncio.create_task(publish())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(producer.close, 10)


async def _close_pages(app: web.Application) -> None:
    app[HUB].close_all()  # open streams end, so shutdown need not wait for them


# --- HTTP ---------------------------------------------------------------------------------

CORS: Final = {"Access-Control-Allow-Origin": "*"}  # no credentials: the visitor id is in the URL


def _required_query(request: web.Request, name: str) -> str:
    """The query parameter ``name``; a 400 when it is missing or over 200 characters."""
    value = request.query.get(name, "")
    if not 1 <= len(value) <= 200:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: required, 1 to 200 characters"}),
            content_type="application/json",
            headers=CORS,
        )
    return value


async def _event_stream(
    request: web.Request, extra: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """A Server-Sent Events response, its headers sent, for the handler to write to."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store", **(extra or {}), **CORS,
    })  # fmt: skip
    await response.prepare(request)
    return response


async def stream(request: web.Request) -> web.StreamResponse:
    """GET /v1/invitations/stream?visitor_id=…: the visitor's invitations, as they come."""
    visitor_id = _required_query(request, "visitor_id")
    hub, keepalive_s = request.app[HUB], request.app[SETTINGS].delivery_keepalive_s
    response = await _event_stream(request, {"X-Accel-Buffering": "no"})
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


async def agent_stream(request: web.Request) -> web.StreamResponse:
    """GET /v1/agents/stream?queue=…: an agent console; online in the queue while open."""
    queue = _required_query(request, "queue")
    agents, keepalive_s = request.app[AGENTS], request.app[SETTINGS].delivery_keepalive_s
    response = await _event_stream(request)
    agents.connect(queue)
    request.app[CAPACITY_CHANGED].set()
    try:
        data = {"queue": queue, "agents_online": agents.online(queue)}
        await response.write(sse_message(orjson.dumps(data), event="ready"))
        quiet = 0.0
        # Checked every second, so an agent that leaves is off the capacity within one.
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(1.0)
            quiet += 1.0
            if quiet >= keepalive_s:
                await response.write(KEEPALIVE)
                quiet = 0.0
    except (ConnectionError, asyncio.CancelledError):
        pass  # the console went away (or the service stops)
    finally:
        agents.disconnect(queue)
        request.app[CAPACITY_CHANGED].set()
    return response


async def simulate_agents(request: web.Request) -> web.Response:
    """PUT /v1/agents/simulated {"queue": "sales", "agents": 2}: set simulated agents."""
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return web.json_response({"error": "body: must be a JSON object"}, status=400)
    queue, count = body.get("queue"), body.get("agents")
    if not isinstance(queue, str) or not 1 <= len(queue) <= 200:
        return web.json_response({"error": "queue: required, 1 to 200 characters"}, status=400)
    if type(count) is not int or not 0 <= count <= 10_000:
        return web.json_response({"error": "agents: must be an integer 0 to 10000"}, status=400)
    request.app[AGENTS].simulate(queue, count)
    request.app[CAPACITY_CHANGED].set()
    return web.json_response({"queue": queue, "agents_online": request.app[AGENTS].online(queue)})


async def capacity(request: web.Request) -> web.Response:
    """GET /v1/capacity: what the next round publishes, one record per known queue."""
    return web.json_response(request.app[AGENTS].records(now_ms()))


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
    app[AGENTS] = Agents(settings.delivery_agent_slots, settings.simulated_agents)
    app[CAPACITY_CHANGED] = asyncio.Event()
    app[SNIPPET_BYTES] = SNIPPET.read_bytes()
    app.router.add_get("/v1/invitations/stream", stream)
    app.router.add_get("/healthz", health)
    app.router.add_get("/v1/health", health)  # the old path, for probes deployed with it
    app.router.add_get("/beckon.js", snippet)
    app.router.add_get("/v1/agents/stream", agent_stream)
    app.router.add_put("/v1/agents/simulated", simulate_agents)
    app.router.add_get("/v1/capacity", capacity)
    demo_shop.add_routes(app, settings)
    serve_delivery(app, app[HUB])  # GET /metrics
    app.cleanup_ctx.extend((_kafka, _pruner, _capacity))
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
