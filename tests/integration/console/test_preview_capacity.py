"""The console's preview of the last hours reads the capacity topic beside the
clickstream, on a real broker: capacity records published there change its figures, as
`beckon backtest --capacity` over the same records gives them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaProducer
from pydantic import SecretStr

from schemas.capacity import Capacity, capacity_to_json, parse_capacity
from schemas.rules import load_rules
from streams.backtest import Result, read_capacity, read_events, run
from streams.clock import now_ms
from streams.console import server
from streams.core.rules import CompiledRules
from streams.kafka.capacity_topic import publish_capacity, recent_records
from streams.kafka.rules_topic import apply_rules
from streams.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "console-capacity-token"
S = 1_000
RULES = """
rules:
  - id: pricing
    location: {include: ["*/pricing"]}
    trigger: {dwell_seconds: 10}
    message: {text: "Questions?"}
    queue: sales
"""
DRAFT = RULES + "    capacity: {min_free: 1}\n"


def event(visitor: str, ts: int) -> bytes:
    return orjson.dumps({"event_id": f"{visitor}-{ts}", "type": "page_view",
                         "visitor_id": visitor, "site_id": "shop", "ts": ts,
                         "url": "https://shop.example/pricing"})  # fmt: skip


def capacity(ts: int, free: int) -> Capacity:
    return parse_capacity(orjson.dumps({"queue": "sales", "agents_online": 1,
                                        "free_slots": free, "measured_at": ts}))  # fmt: skip


def produce(settings: Settings, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(**settings.kafka_python_config(), acks="all")
    try:
        for key, value in values:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def publish(settings: Settings, records: list[Capacity]) -> None:
    producer = KafkaProducer(**settings.kafka_python_config(), acks="all")
    try:
        for record in records:
            publish_capacity(producer, settings.topic_capacity, record)
        producer.flush()
    finally:
        producer.close()


def preview(settings: Settings) -> dict[str, Any]:
    """POST /api/rules/preview of the last hour, in this process, on the real topics."""
    app = web.Application()
    server.add_console(app, settings, lambda: [])

    async def scenario() -> dict[str, Any]:
        async with TestClient(TestServer(app)) as client:
            r = await client.post("/api/rules/preview", json={"yaml": DRAFT,
                                  "source": {"hours": 1}},
                                  headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            answer: dict[str, Any] = await r.json()
            assert r.status == 200, answer
            return answer

    return asyncio.run(scenario())


def figures(answer: dict[str, Any]) -> dict[str, Any]:
    [row] = answer["rules"]
    return {k: row["draft"][k] for k in ("invitations", "suppressed")}


def backtest(events: list[bytes], records: list[bytes], settings: Settings) -> dict[str, Any]:
    result = Result()
    view = read_capacity(records, result)
    rules = CompiledRules.of(load_rules(DRAFT))
    run(read_events(events, result), rules, settings.limits(), result, capacity=view)
    return {
        "invitations": sum(d["outcome"] == "invited" for d in result.decisions),
        "suppressed": dict(Counter(d["reason"] for d in result.decisions if d["reason"])),
    }


def test_capacity_records_on_the_topic_change_the_previews_figures(
    live: tuple[Settings, dict[str, str]],
) -> None:
    settings = live[0].model_copy(update={"console_token": SecretStr(TOKEN)})
    apply_rules(settings, load_rules(RULES))
    t0 = now_ms() - 10 * 60 * S
    # Two visitors, each decided 10 s after their view: at t0 + 10 s and t0 + 110 s.
    events = [event("v1", t0), event("v2", t0 + 100 * S)]
    produce(settings, settings.topic_clickstream, [(b"v1", events[0]), (b"v2", events[1])])

    without = preview(settings)
    assert figures(without) == {"invitations": 2, "suppressed": {}}  # unknown allows
    assert without["capacity"]["records"] == 0

    # sales has no free slot before v1's instant, and one before v2's.
    records = [capacity(t0 - 30 * S, free=0), capacity(t0 + 60 * S, free=1)]
    publish(settings, records)
    produce(settings, settings.topic_capacity, [(b"other", capacity_to_json(records[0]))])

    answer = preview(settings)
    assert figures(answer) == {"invitations": 1, "suppressed": {"no_capacity": 1}}
    lines = [capacity_to_json(r) for r in records]
    assert figures(answer) == backtest(events, lines, settings)
    assert answer["capacity"]["records"] == 2
    assert answer["capacity"]["bad_lines"] == 1  # keyed `other`, not by its queue
    [row] = answer["rules"]
    assert [(d["visitor_id"], d["reason"]) for d in row["sample"]] == [
        ("v1", "no_capacity"), ("v2", None),
    ]  # fmt: skip


def test_recent_records_start_at_the_instant_and_keep_the_newest(
    live: tuple[Settings, dict[str, str]],
) -> None:
    settings = live[0]
    before = now_ms()
    publish(settings, [capacity(before, free=n) for n in range(2)])
    time.sleep(0.05)
    since = now_ms()
    publish(settings, [capacity(since, free=n) for n in range(2, 5)])

    def frees(records: list[Any]) -> list[int]:
        return [parse_capacity(r.value).free_slots for r in records]

    assert frees(recent_records(settings, 0, 100)) == [0, 1, 2, 3, 4]
    assert frees(recent_records(settings, since, 100)) == [2, 3, 4]
    assert frees(recent_records(settings, 0, 2)) == [3, 4]
    assert frees(recent_records(settings, now_ms() + 60_000, 100)) == []
