"""Helpers the integration tests share: a collector, a delivery service and a worker to
run, invitations to publish, events to publish and topics to read, the backtest's
invitations, and the dwell records the engine computes.

Plain functions and context managers; the fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson
from aiohttp import web
from kafka import KafkaConsumer

from bench.clickstream import RULES_YAML
from schemas.events import parse_event
from schemas.invitations import Invitation, format_instant, invitation_to_json
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
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


def stop_workers(*workers: subprocess.Popen[bytes]) -> None:
    """Stop the workers as an operator would (SIGTERM), all at once."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def kill_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no chance to commit offsets or flush anything."""
    worker.kill()
    worker.wait(timeout=30)


# --- events in, records out ----------------------------------------------------------------


def publish_lines(settings: Settings, lines: Iterable[bytes]) -> None:
    """Recorded events, each keyed by its visitor id as the collector keys them; returns
    once Kafka acknowledged them all."""
    with Publisher(settings) as pub:
        for line in lines:
            pub.publish_raw(orjson.loads(line)["visitor_id"].encode(), line)


def read_topic(
    settings: Settings,
    topic: str,
    until: int,
    timeout_s: float,
    enough: Callable[[list[Any]], bool] | None = None,
    linger_s: float = 0,
) -> list[Any]:
    """A topic's records from the start: until there are ``until`` of them, ``enough``
    says so, or ``timeout_s`` passed; then ``linger_s`` more, for any that come late."""
    consumer = KafkaConsumer(
        topic, **settings.kafka_python_config(), auto_offset_reset="earliest",
        consumer_timeout_ms=1000, group_id=f"read-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(records) < until:
            records += [r for batch in consumer.poll(500).values() for r in batch]
            if enough is not None and enough(records):
                break
        deadline = time.monotonic() + linger_s
        while time.monotonic() < deadline:
            records += [r for batch in consumer.poll(200).values() for r in batch]
    finally:
        consumer.close()
    return records


def positions(settings: Settings, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The worker group's committed offsets on ``topic`` by partition (none yet: absent),
    and the topic's end offsets."""
    from kafka import KafkaAdminClient, TopicPartition

    admin = KafkaAdminClient(**settings.kafka_python_config())
    consumer = KafkaConsumer(**settings.kafka_python_config())
    try:
        offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = consumer.end_offsets(tps)
    finally:
        admin.close()
        consumer.close()
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    return committed, {tp.partition: end for tp, end in ends.items()}


def invitation_ids(records: Iterable[Any]) -> dict[str, str]:
    """invitation_id -> triggered_at of invitation records, copies dropped."""
    values = (orjson.loads(r.value) for r in records)
    return {v["invitation_id"]: v["triggered_at"] for v in values}


def read_invitations(
    settings: Settings, expected: Iterable[str], timeout_s: float = 90, linger_s: float = 0
) -> dict[str, str]:
    """The invitations on the topic (invitation_id -> triggered_at, copies dropped), once
    every expected id arrived or ``timeout_s`` passed, and ``linger_s`` more."""
    wanted = set(expected)
    records = read_topic(settings, settings.topic_invitations, 10**9, timeout_s,
                         enough=lambda got: invitation_ids(got).keys() >= wanted,
                         linger_s=linger_s)  # fmt: skip
    return invitation_ids(records)


def backtest_invitations(lines: Iterable[bytes], rules_yaml: str = RULES_YAML) -> dict[str, str]:
    """``beckon backtest`` of these events: invitation_id -> triggered_at."""
    result = Result()
    rules = CompiledRules.of(load_rules(rules_yaml))
    run(read_events(lines, result), rules, Settings().limits(), result)
    return {i["invitation_id"]: i["triggered_at"] for i in result.invitations}


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
