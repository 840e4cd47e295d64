"""Records read again after a restart or a rebalance leave the journeys as they were.

Faust commits the input offsets every second; the worker saves the journeys with every
batch. The next owner of a partition reads again from the committed offset, behind the
saved journeys. The real broker, a kill -9 and two workers are in
tests/integration/worker/test_worker_live.py."""

from __future__ import annotations

import asyncio

import orjson

from schemas.instants import parse_instant
from schemas.rules import load_rules
from streams.core.journey import MAX_SEEN_IDS, Journey
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.worker.held import Held, decode, encode
from streams.worker.pipeline import Pipeline
from tests.unit.worker.standins import StandInApp, batch, click

T0 = parse_instant("2026-12-01T10:00:00Z")
RULES = CompiledRules.of(load_rules("""
rules:
  - id: third-page
    trigger: {pages_in_session: 3}
    message: {text: "Hello"}
"""))  # fmt: skip


def test_a_batch_read_again_changes_no_journey_even_past_the_remembered_event_ids() -> None:
    app = StandInApp()
    pipeline = Pipeline(app, Settings(partitions=4), lambda: RULES, wall_ms=lambda: T0)  # type: ignore[arg-type]
    n = MAX_SEEN_IDS + 50  # more than the event ids a journey remembers
    records = batch(*[click("v1", i, "page_view" if i % 10 == 0 else "page_ping", T0 + i * 5_000)
                      for i in range(n)])  # fmt: skip

    asyncio.run(pipeline.handle(records))
    saved, sent = dict(app.table), list(app.sent)
    assert any(topic == "beckon.invitations" for topic, _ in sent)
    asyncio.run(pipeline.handle(records))  # the next owner, from the committed offset

    assert dict(app.table) == saved
    assert app.sent == sent  # not even a copy
    assert pipeline.metrics.replayed._value.get() == n


def test_a_record_is_folded_already_up_to_the_journeys_offset_in_its_partition() -> None:
    journey = Journey("v1", "shop")
    journey.clock = T0
    held = Held(journey, [2, 40])
    assert held.folded_already(2, 40, T0)
    assert held.folded_already(2, 7, T0 - 60_000)
    assert not held.folded_already(2, 41, T0)  # the next record
    assert not held.folded_already(3, 7, T0)  # another partition (more partitions now)
    # The clickstream topic made anew: offsets from 0 again, events newer than the journey.
    assert not held.folded_already(2, 0, T0 + 1)
    assert not Held(Journey("v2", "shop")).folded_already(2, 0, T0)  # never read live
    assert decode(encode(held)).read_to == [2, 40]


def test_the_offset_is_the_workers_bookkeeping_not_the_journeys() -> None:
    journey = Journey("v1", "shop")
    assert "read_to" not in journey.to_dict()
    stored = encode(Held(journey, [1, 9]))
    assert Journey.from_dict(orjson.loads(stored)).to_dict() == journey.to_dict()
