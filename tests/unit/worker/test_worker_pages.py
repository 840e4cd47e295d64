"""The worker gathers page activity over batches and publishes it every dwell_flush_s."""

from __future__ import annotations

import asyncio
import time

import orjson

from schemas.instants import parse_instant
from schemas.rules import load_rules
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.worker.pipeline import Pipeline
from tests.unit.worker.standins import StandInApp, batch, click

T0 = parse_instant("2026-12-01T10:00:00Z")
RULES = CompiledRules.of(load_rules("""
rules:
  - id: r
    trigger: {dwell_seconds: 600}
    message: {text: "Hello"}
"""))  # fmt: skip


def test_page_activity_is_published_once_per_flush_not_once_per_batch() -> None:
    app = StandInApp()
    settings = Settings(partitions=4, dwell_flush_s=60, topic_dwell_updates="updates")
    pipeline = Pipeline(app, settings, lambda: RULES, wall_ms=lambda: T0 + 20_000)  # type: ignore[arg-type]

    async def scenario() -> None:
        for n in range(3):  # three batches, two visitors on one page
            await pipeline.handle(batch(click("v1", n, "page_view" if n == 0 else "page_ping",
                                              T0 + n * 5_000),
                                        click("v2", n, "page_view" if n == 0 else "page_ping",
                                              T0 + n * 5_000)))  # fmt: skip
        assert [t for t, _ in app.sent if t == "updates"] == []  # not yet due
        pipeline.handled_at = time.monotonic() - 1  # the timer runs a second after them
        await pipeline.fire_timers()
        assert [t for t, _ in app.sent if t == "updates"] == []  # still not due
        pipeline.pages_due = time.monotonic()  # the flush interval has passed
        await pipeline.fire_timers()

    asyncio.run(scenario())
    updates = [value for topic, value in app.sent if topic == "updates"]
    assert len(updates) == 1  # one page in one window: one record for all three batches
    record = orjson.loads(updates[0] or b"")
    assert (record["page_views"], record["visitors"]) == (2, 2)
    assert record["page"] == "https://shop.example/pricing"
    assert pipeline.pages == {}


def test_a_batch_that_finds_the_flush_due_publishes_the_pages_with_its_own_records() -> None:
    app = StandInApp()
    settings = Settings(partitions=4, dwell_flush_s=60, topic_dwell_updates="updates")
    pipeline = Pipeline(app, settings, lambda: RULES, wall_ms=lambda: T0 + 20_000)  # type: ignore[arg-type]

    async def scenario() -> None:
        await pipeline.handle(batch(click("v1", 0, "page_view", T0)))
        pipeline.pages_due = time.monotonic()  # the flush interval has passed
        await pipeline.handle(batch(click("v2", 0, "page_view", T0 + 1_000)))

    asyncio.run(scenario())
    updates = [value for topic, value in app.sent if topic == "updates"]
    assert len(updates) == 1  # both batches' activity, published by the second
    assert orjson.loads(updates[0] or b"")["page_views"] == 2
    assert pipeline.pages == {}


def test_what_is_gathered_when_the_worker_stops_is_published() -> None:
    app = StandInApp()
    receivers = []
    app.on_before_shutdown.connect = receivers.append  # type: ignore[attr-defined]
    settings = Settings(partitions=4, dwell_flush_s=60, topic_dwell_updates="updates")
    pipeline = Pipeline(app, settings, lambda: RULES, wall_ms=lambda: T0 + 1_000)  # type: ignore[arg-type]

    async def scenario() -> None:
        await pipeline.handle(batch(click("v1", 0, "page_view", T0)))
        [on_stop] = receivers
        await on_stop(app)

    asyncio.run(scenario())
    updates = [value for topic, value in app.sent if topic == "updates"]
    assert len(updates) == 1
    assert orjson.loads(updates[0] or b"")["page_views"] == 1
