"""The worker's two halves of a budget, on stand-ins (the real broker, kills and restarts
are in tests/integration/worker/test_budget_live.py): the pipeline sends candidates and
watermarks that never pass a planned instant, and the stage decides them as the backtest
does, once, however often its records are read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP

from schemas.instants import parse_instant
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.worker.budgets import BudgetStage
from streams.worker.metrics import WorkerMetrics
from streams.worker.pipeline import Pipeline
from tests.unit.worker.standins import StandInApp, batch, click

T0 = parse_instant("2026-12-01T10:00:00Z")
HOUR = 3_600_000
WALL = T0 + 10 * 24 * HOUR  # a replay: the wall clock is days past the events
RULES = CompiledRules.of(load_rules("""
queues:
  default: {budget: {invitations: 1, per: hour}}
rules:
  - id: hesitating
    trigger: {dwell_seconds: 30}
    message: {text: "Questions about pricing?"}
"""))  # fmt: skip
SETTINGS = Settings(partitions=1, grace_s=2, budget_slack_s=2)


def owning(app: StandInApp, *partitions: int) -> StandInApp:
    tps = {TP(SETTINGS.topic_clickstream, p) for p in partitions}
    app.consumer = SimpleNamespace(assignment=lambda: tps)  # type: ignore[attr-defined]
    return app


def sent(app: StandInApp, topic: str) -> list[Any]:
    return [orjson.loads(v) for t, v in app.sent if t == topic and v]


def replay(app: StandInApp, wall: list[int] | None = None) -> Pipeline:
    """One batch of a fast replay: four visitors, an hour apart, on one partition."""
    now = [WALL] if wall is None else wall
    pipeline = Pipeline(app, SETTINGS, lambda: RULES, wall_ms=lambda: now[0])  # type: ignore[arg-type]
    clicks = [click(f"v{n}", 0, "page_view", T0 + n * HOUR) for n in range(4)]
    asyncio.run(pipeline.handle(batch(*clicks, partitions=1)))
    return pipeline


def test_a_watermark_never_passes_an_instant_still_planned() -> None:
    """The clock after the batch is hours past v0's instant (T0 + 30 s), which is still
    planned: v0 is timed from that clock. The watermark waits for it."""
    app = owning(StandInApp(), 0)
    pipeline = replay(app)
    assert (pipeline.timers.now(0, WALL) or 0) >= T0 + HOUR  # the clock is hours on
    asyncio.run(pipeline.publish_watermarks())
    [mark] = sent(app, SETTINGS.topic_budget)
    assert mark == {"partition": 0, "watermark": T0 + 30_000}


def test_a_replay_that_ended_is_held_back_only_by_its_planned_instants() -> None:
    """Read to the end and idle: the clock runs on from the newest event in wall time,
    so the last instants of a replay would wait for every partition's clock; its
    watermark is the earliest instant still planned instead, the wall clock once none."""
    app, wall = owning(StandInApp(), 0), [WALL]
    pipeline = replay(app, wall)
    end = pipeline.timers.read_to[0]
    pipeline.timers.confirm({0: end}, {0: end}, WALL)
    wall[0] = WALL + 10_000  # idle for 10 s
    asyncio.run(pipeline.publish_watermarks())
    # every visitor is timed from the clock after the batch: none has fired yet
    assert sent(app, SETTINGS.topic_budget)[-1] == {"partition": 0, "watermark": T0 + 30_000}
    for n in range(4):
        pipeline.timers.forget(f"v{n}".encode())
    asyncio.run(pipeline.publish_watermarks())
    clock = pipeline.timers.now(0, wall[0]) or 0
    assert clock < WALL  # the clock is far behind the wall: the mark is not
    assert sent(app, SETTINGS.topic_budget)[-1] == {"partition": 0, "watermark": WALL + 6_000}


def test_candidates_go_to_the_budget_topic_not_to_the_visitors() -> None:
    app = owning(StandInApp(), 0)
    pipeline = replay(app)
    for n in range(40):  # the stream moves on, far enough for every instant to fire
        asyncio.run(pipeline.handle(batch(click(f"w{n}", 0, "page_view", T0 + 5 * HOUR),
                                          partitions=1)))  # fmt: skip
    candidates = [c for c in sent(app, SETTINGS.topic_budget) if "invitation" in c]
    assert {c["invitation"]["visitor_id"] for c in candidates} == {"v0", "v1", "v2", "v3"}
    assert sent(app, SETTINGS.topic_invitations) == []
    assert sent(app, SETTINGS.topic_decisions) == []


def stage_on(app: StandInApp) -> BudgetStage:
    return BudgetStage(app, SETTINGS, lambda: RULES, WorkerMetrics())  # type: ignore[arg-type]


def records(values: Sequence[bytes]) -> list[Any]:
    return [SimpleNamespace(topic="budget", partition=0, offset=n, key=b"", value=v)
            for n, v in enumerate(values)]  # fmt: skip


def test_the_stage_decides_as_the_backtest_and_a_replay_of_its_input_changes_nothing() -> None:
    clicks = [click(f"v{n}", 0, "page_view", T0 + n * 10 * 60_000) for n in range(12)]
    result = Result()
    run(read_events([v for _, v in clicks], result), RULES, Settings().limits(), result)
    expected = {(d["visitor_id"], d["reason"]) for d in result.decisions}
    assert {reason for _, reason in expected} == {None, "budget"}

    source = owning(StandInApp(), 0)
    pipeline = Pipeline(source, SETTINGS, lambda: RULES, wall_ms=lambda: WALL)  # type: ignore[arg-type]
    for one in clicks:
        asyncio.run(pipeline.handle(batch(one, partitions=1)))
    for n in range(20):  # the stream moves on: the median clock passes every instant
        asyncio.run(pipeline.handle(batch(click(f"w{n}", 0, "page_view", T0 + 9 * HOUR),
                                          partitions=1)))  # fmt: skip
    asyncio.run(pipeline.publish_watermarks())
    values = [v for t, v in source.sent if t == SETTINGS.topic_budget and v]

    app = StandInApp()
    stage = stage_on(app)
    asyncio.run(stage.handle(records(values)))
    got = {(d["visitor_id"], d["reason"]) for d in sent(app, SETTINGS.topic_decisions)}
    assert got == expected
    granted = {i["visitor_id"] for i in sent(app, SETTINGS.topic_invitations)}
    assert granted == {v for v, reason in expected if reason is None}

    # A crash before the offsets were committed: the same records again, over the state
    # saved in the table, by a stage that starts afresh. Nothing more is decided.
    before = len(app.sent)
    again = stage_on(app)
    asyncio.run(again.handle(records(values)))
    outputs = (SETTINGS.topic_decisions, SETTINGS.topic_invitations)
    assert [t for t, _ in app.sent[before:] if t in outputs] == []


def test_a_partition_without_records_holds_no_round_back_nor_lowers_a_mark() -> None:
    two = SETTINGS.model_copy(update={"partitions": 2})
    app = StandInApp()
    stage = BudgetStage(app, two, lambda: RULES, WorkerMetrics())  # type: ignore[arg-type]
    candidate = {"decision": {"visitor_id": "v", "invitation_id": "i", "outcome": "invited",
                              "reason": None, "rule_id": "hesitating"},
                 "invitation": {"invitation_id": "i", "queue": "default", "visitor_id": "v",
                                "rule_id": "hesitating",
                                "triggered_at": "2026-12-01T10:00:00.500Z",
                                "priority": 0}}  # fmt: skip

    def mark(p: int, w: int | None) -> bytes:
        return orjson.dumps({"partition": p, "watermark": w})

    asyncio.run(stage.handle(records([orjson.dumps(candidate), mark(0, T0 + 5_000)])))
    assert sent(app, two.topic_decisions) == []  # partition 1 has said nothing yet
    asyncio.run(stage.handle(records([mark(1, None)])))
    assert [d["reason"] for d in sent(app, two.topic_decisions)] == [None]
    state = stage.held[0]
    asyncio.run(stage.handle(records([mark(1, T0 + 9_000), mark(1, None)])))
    assert state.marks == {0: T0 + 5_000, 1: T0 + 9_000}


def test_planned_instants_are_not_kept_once_fired_or_planned_anew() -> None:
    """Without budgets nothing asks for the earliest instant: the heap of planned ones
    must not grow with every plan made."""
    app = owning(StandInApp(), 0)
    pipeline = replay(app)
    timers = pipeline.timers
    held = SimpleNamespace(anchor=T0, journey=SimpleNamespace(clock=T0))
    for n in range(20_000):  # one visitor planned anew 20,000 times
        timers.schedule(b"v", 0, held, T0 + 5 * HOUR + n)  # type: ignore[arg-type]
    assert len(timers.planned[0]) < 2 * len(timers.instants) + 1100
    assert timers.earliest(0) == T0 + 30_000  # v0's, still planned
    timers.forget(b"v0")
    assert timers.earliest(0) == T0 + HOUR + 30_000


def _candidate(id_: str, at: str = "2026-12-01T10:00:00.500Z") -> bytes:
    return orjson.dumps({
        "decision": {"visitor_id": "v", "invitation_id": id_, "outcome": "invited",
                     "reason": None, "rule_id": "hesitating"},
        "invitation": {"invitation_id": id_, "queue": "default", "visitor_id": "v",
                       "rule_id": "hesitating", "triggered_at": at, "priority": 0},
    })  # fmt: skip


def _mark(w: int) -> bytes:
    return orjson.dumps({"partition": 0, "watermark": w})


def test_waiting_invitations_are_granted_once_no_budget_is_left() -> None:
    rules = [RULES]
    app = StandInApp()
    stage = BudgetStage(app, SETTINGS, lambda: rules[0], WorkerMetrics())  # type: ignore[arg-type]
    asyncio.run(stage.handle(records([_candidate("i")])))
    asyncio.run(stage.release_orphans())
    assert sent(app, SETTINGS.topic_invitations) == []  # the budget is still there
    rules[0] = CompiledRules.of(load_rules("rules: []"))  # the budget is removed
    asyncio.run(stage.release_orphans())
    assert [i["invitation_id"] for i in sent(app, SETTINGS.topic_invitations)] == ["i"]
    assert stage.held[0].budgets.pending == {}


def test_a_stage_whose_partition_another_worker_moved_on_reads_the_table_again() -> None:
    app = StandInApp()
    mine, theirs = stage_on(app), stage_on(app)  # two workers, one table (a stand-in)
    asyncio.run(mine.handle(records([_candidate("i")])))
    # the partition moves to the other worker, which decides the round...
    asyncio.run(theirs.handle(records([_candidate("i"), _mark(T0 + 5_000)])))
    assert len(sent(app, SETTINGS.topic_decisions)) == 1
    # ...and back: the state this worker held is stale, the table's says it is decided
    asyncio.run(mine.handle(records([_mark(T0 + 6_000)])))
    assert len(sent(app, SETTINGS.topic_decisions)) == 1
