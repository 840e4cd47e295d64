"""The delivery service over a real broker: invitations reach the visitor's open page as
Server-Sent Events, expired ones do not, and each one shown is recorded on the clickstream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from kafka import KafkaConsumer

from schemas.invitations import Invitation, format_instant, invitation_to_json
from streams.delivery.server import build_app
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.conftest import _free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(kafka_settings: Settings, new_topic: Callable[..., str]) -> Settings:
    return kafka_settings.model_copy(
        update={
            "topic_invitations": new_topic("delivery.invitations"),
            "topic_clickstream": new_topic("delivery.clickstream"),
            "delivery_group": f"delivery-{uuid.uuid4().hex[:8]}",
            "delivery_keepalive_s": 1.0,
        }
    )


def _invitation(visitor: str, *, age_s: float = 0, ttl_s: float = 60) -> Invitation:
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


def _publish(settings: Settings, *invitations: Invitation) -> None:
    with Publisher(settings, topic=settings.topic_invitations) as pub:
        for inv in invitations:
            pub.publish_raw(inv.visitor_id.encode(), invitation_to_json(inv))


@asynccontextmanager
async def _serve(settings: Settings) -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "localhost", port).start()
    try:
        yield f"http://localhost:{port}"
    finally:
        await runner.cleanup()


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
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


async def _first_invitation(base: str, visitor: str, after_ready: Callable[[], Any]) -> Any:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{base}/v1/invitations/stream", params={"visitor_id": visitor}) as response,
    ):
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        async for event, data in _events(response):
            if event == "ready":
                await asyncio.to_thread(after_ready)
            elif event == "invitation":
                return data
    raise AssertionError("the stream ended without an invitation")


def _clickstream(settings: Settings, want: int, timeout_s: float = 20) -> list[Any]:
    consumer = KafkaConsumer(
        settings.topic_clickstream, **settings.kafka_python_config(),
        auto_offset_reset="earliest", group_id=f"read-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(records) < want:
            records += [r for batch in consumer.poll(500).values() for r in batch]
    finally:
        consumer.close()
    return records


def test_an_open_page_gets_its_invitation_not_the_expired_one_and_shown_is_recorded(
    settings: Settings,
) -> None:
    expired = _invitation("v-open", age_s=120)
    live = _invitation("v-open")

    async def scenario() -> Any:
        async with _serve(settings) as base:
            # Same visitor, same partition: the expired one is read first and must be dropped.
            publish = lambda: _publish(settings, expired, live)  # noqa: E731
            return await asyncio.wait_for(_first_invitation(base, "v-open", publish), 30)

    got = asyncio.run(scenario())
    assert got["invitation_id"] == live.invitation_id
    assert got["message"] == "Any questions about our plans?"
    assert "context" not in got
    [record] = _clickstream(settings, want=1)
    shown = orjson.loads(record.value)
    assert record.key == b"v-open"
    assert (shown["type"], shown["response"]) == ("invitation_response", "shown")
    assert shown["invitation_id"] == live.invitation_id
    assert shown["session_id"] == "v-open.s"


def test_an_invitation_that_arrives_before_the_page_opens_waits_for_it(
    settings: Settings,
) -> None:
    held = _invitation("v-later")

    async def scenario() -> Any:
        async with _serve(settings) as base:
            await asyncio.to_thread(_publish, settings, held)
            async with aiohttp.ClientSession() as client:
                for _ in range(100):  # until the service has read it
                    async with client.get(f"{base}/v1/health") as response:
                        if (await response.json())["pending"]:
                            break
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError("the invitation was never read")
            return await asyncio.wait_for(_first_invitation(base, "v-later", lambda: None), 10)

    assert asyncio.run(scenario())["invitation_id"] == held.invitation_id
