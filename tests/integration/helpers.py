"""Helpers the integration tests share: a collector, a delivery service and a worker to
run, invitations to publish, and the dwell records the engine computes.

Plain functions and context managers; the fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson
from aiohttp import web

from bench.clickstream import RULES_YAML
from schemas.events import parse_event
from schemas.invitations import Invitation, format_instant, invitation_to_json
from schemas.rules import load_rules
from streams.collector.server import Collector
from streams.collector.sites import Sites
from streams.core.dwell import Key, PageWindow, encode_key, fold
from streams.core.engine import Limits, advance
from streams.core.journey import Journey
from streams.core.rules import CompiledRules
from streams.delivery.server import build_app
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.helpers import free_port

# --- the collector ---------------------------------------------------------------------------


@contextmanager
def running_collector(settings: Settings, sites: Sites) -> Iterator[str]:
    """A collector on a free port, served by a thread's event loop; yields its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="collector", daemon=True)
    thread.start()
    port = free_port()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(Collector(settings, sites).app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# --- the delivery service ----------------------------------------------------------------------


def invitation(visitor: str, *, age_s: float = 0, ttl_s: float = 60) -> Invitation:
    """An invitation triggered ``age_s`` ago that expires ``ttl_s`` after it was triggered."""
    t = int(time.time() * 1000 - age_s * 1000)
    return Invitation(
        invitation_id=str(uuid.uuid4()),
        visitor_id=visitor,
        session_id=f"{visitor}.s",
        site_id="shop",
        rule_id="pricing-hesitation",
        url="https://shop.example/pricing",
        triggered_at=format_instant(t),
        priority=10,
        queue="sales",
        message="Any questions about our plans?",
        expires_at=format_instant(t + int(ttl_s * 1000)),
    )


def publish_invitations(settings: Settings, *invitations: Invitation) -> None:
    with Publisher(settings, topic=settings.topic_invitations) as pub:
        for inv in invitations:
            pub.publish_raw(inv.visitor_id.encode(), invitation_to_json(inv))


@asynccontextmanager
async def serving_delivery(settings: Settings) -> AsyncIterator[str]:
    """The delivery service on a free port, in this event loop; yields its base URL."""
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "localhost", port).start()
    try:
        yield f"http://localhost:{port}"
    finally:
        await runner.cleanup()


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) for each Server-Sent Event; comments (keep-alives) are skipped."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in fields:
                yield fields.get("event", "message"), orjson.loads(fields["data"])
            fields = {}
        elif not line.startswith(":") and ": " in line:
            name, value = line.split(": ", 1)
            fields[name] = value


async def first_invitation(base: str, visitor: str, after_ready: Callable[[], Any]) -> Any:
    """Open the visitor's stream, call ``after_ready`` once it is ready, return the first
    invitation it pushes."""
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{base}/v1/invitations/stream", params={"visitor_id": visitor}) as response,
    ):
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        async for event, data in sse_events(response):
            if event == "ready":
                await asyncio.to_thread(after_ready)
            elif event == "invitation":
                return data
    raise AssertionError("the stream ended without an invitation")


# --- the worker ------------------------------------------------------------------------------


def start_worker(env: dict[str, str], rules: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``beckon worker`` with a rules file and its web server on a free port."""
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker", "--rules", str(rules), "--web-port",
         str(free_port())],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def dwell_records(lines: list[bytes]) -> dict[bytes, Any]:
    """The dwell record of every page and window, from the events in publish order."""
    journeys: dict[str, Journey] = {}
    aggregates: dict[Key, PageWindow] = {}
    rules = CompiledRules.of(load_rules(RULES_YAML))
    for line in lines:
        event = parse_event(line)
        journey, step = advance(journeys.get(event.visitor_id), event, rules, Limits())
        journeys[event.visitor_id] = journey
        fold(step.pages, aggregates)
    return {encode_key(k): a.to_record(*k, Limits().window_ms) for k, a in aggregates.items()}
