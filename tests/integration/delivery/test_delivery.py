"""The delivery service over a real broker: invitations reach the visitor's open page as
Server-Sent Events, expired ones do not, and each one shown is recorded on the clickstream."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from kafka import KafkaConsumer

from streams.settings import Settings
from tests.integration.helpers import (
    first_invitation,
    invitation,
    publish_invitations,
    serving_delivery,
)

pytestmark = pytest.mark.integration


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
    delivery_settings: Settings,
) -> None:
    settings = delivery_settings
    expired = invitation("v-open", age_s=120)
    live = invitation("v-open")

    async def scenario() -> Any:
        async with serving_delivery(settings) as base:
            # Same visitor, same partition: the expired one is read first and must be dropped.
            publish = lambda: publish_invitations(settings, expired, live)  # noqa: E731
            return await asyncio.wait_for(first_invitation(base, "v-open", publish), 30)

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
    delivery_settings: Settings,
) -> None:
    settings = delivery_settings
    held = invitation("v-later")

    async def scenario() -> Any:
        async with serving_delivery(settings) as base:
            await asyncio.to_thread(publish_invitations, settings, held)
            async with aiohttp.ClientSession() as client:
                for _ in range(100):  # until the service has read it
                    async with client.get(f"{base}/v1/health") as response:
                        if (await response.json())["pending"]:
                            break
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError("the invitation was never read")
            return await asyncio.wait_for(first_invitation(base, "v-later", lambda: None), 10)

    assert asyncio.run(scenario())["invitation_id"] == held.invitation_id
