"""The delivery service publishes its queues' capacity on a real broker: simulated agents
from the start, agent consoles as they connect and leave, and changes through its API."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from kafka import KafkaConsumer

from schemas.capacity import parse_capacity
from streams.settings import Settings
from tests.integration.helpers import serving_delivery, sse_events

pytestmark = pytest.mark.integration


class CapacityReader:
    """Reads the capacity topic as the test goes (on a thread: kafka-python blocks)."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = KafkaConsumer(
            settings.topic_capacity, **settings.kafka_python_config(),
            auto_offset_reset="earliest", group_id=f"read-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        self.seen: list[tuple[bytes, Any]] = []

    def until(self, wanted: Callable[[Any], bool], timeout_s: float = 20) -> Any:
        """The first record (from the start) for which ``wanted`` holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _, record in self.seen:
                if wanted(record):
                    return record
            for batch in self.consumer.poll(300).values():
                self.seen += [(r.key, parse_capacity(r.value)) for r in batch]
        raise AssertionError(f"no such capacity record in {len(self.seen)}")


def test_agents_come_and_go_on_the_capacity_topic(
    delivery_settings: Settings, new_topic: Callable[..., str]
) -> None:
    settings = delivery_settings.model_copy(update={
        "topic_capacity": new_topic("delivery.capacity", partitions=1),
        "delivery_simulate_agents": "sales=2", "delivery_agent_slots": 2,
        "delivery_capacity_every_s": 0.5,
    })  # fmt: skip
    reader = CapacityReader(settings)

    async def scenario() -> None:
        async with serving_delivery(settings) as base, aiohttp.ClientSession() as client:
            until = lambda wanted: asyncio.to_thread(reader.until, wanted)  # noqa: E731
            first = await until(lambda r: r.queue == "sales")
            assert (first.agents_online, first.free_slots, first.expected_wait_s) == (2, 4, 0.0)
            assert abs(first.measured_at - time.time() * 1000) < 10_000
            # An agent console for support opens: support has one agent while it is open.
            async with client.get(f"{base}/v1/agents/stream", params={"queue": "support"}) as r:
                async for event, data in sse_events(r):
                    assert (event, data) == ("ready", {"queue": "support", "agents_online": 1})
                    break
                await until(lambda r: r.queue == "support" and r.agents_online == 1)
            await until(lambda r: r.queue == "support" and r.agents_online == 0)
            # The sales agents all go: published at once, with no free slot and no wait.
            put = await client.put(f"{base}/v1/agents/simulated",
                                   json={"queue": "sales", "agents": 0})  # fmt: skip
            assert put.status == 200 and await put.json() == {"queue": "sales", "agents_online": 0}
            gone = await until(lambda r: r.queue == "sales" and r.agents_online == 0)
            assert (gone.free_slots, gone.expected_wait_s) == (0, None)
            bad = await client.put(f"{base}/v1/agents/simulated", json={"queue": "sales"})
            assert bad.status == 400 and "agents" in (await bad.json())["error"]
            now = await (await client.get(f"{base}/v1/capacity")).json()
            assert [(c["queue"], c["agents_online"]) for c in now] == [("sales", 0), ("support", 0)]

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        reader.consumer.close()
    assert all(key == record.queue.encode() for key, record in reader.seen)
