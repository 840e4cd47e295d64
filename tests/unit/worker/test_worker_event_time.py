"""A bad clock, a restart ahead of a backlog: the worker's timers still fire what the
backtest fires, when it fires it (docs/event-time.md). The real broker, kills and many
visitors are in tests/integration/worker/test_event_time_live.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from schemas.instants import format_instant, parse_instant
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.worker.pipeline import Pipeline
from tests.unit.worker.standins import StandInApp, batch, click

T0 = parse_instant("2026-12-01T10:00:00Z")
SECOND, HOUR = 1_000, 3_600_000
WALL = T0 + 10 * 24 * HOUR  # a replay: the wall clock is days past the events
RULES = CompiledRules.of(load_rules("""
rules:
  - id: hesitating
    trigger: {dwell_seconds: 30}
    message: {text: "Questions about pricing?"}
"""))  # fmt: skip
Click = tuple[bytes, bytes]


def pipeline_on(
    app: StandInApp, wall: Callable[[], int] = lambda: WALL, **settings: Any
) -> Pipeline:
    config = Settings(partitions=1, grace_s=2, **settings)
    return Pipeline(app, config, lambda: RULES, wall_ms=wall)  # type: ignore[arg-type]


def restarted_at_the_end(
    app: StandInApp, records: Sequence[Click], wall: Callable[[], int] = lambda: WALL,
    **settings: Any,
) -> Pipeline:  # fmt: skip
    """A worker that read ``records``, then another on its table after a restart, told by
    Kafka that the partition is read to its end (the next records, if any, are still on
    their way)."""
    first = pipeline_on(app)
    feed(first, records)
    end = first.timers.read_to[0]  # the next offset: every record was handled
    restarted = pipeline_on(app, wall, **settings)
    asyncio.run(restarted.rebuild_wakeups())
    restarted.timers.confirm({0: end}, {0: end}, WALL)
    return restarted


def feed(pipeline: Pipeline, *batches: Sequence[Click]) -> None:
    async def scenario() -> None:
        for clicks in batches:
            await pipeline.handle(batch(*clicks, partitions=1))
            await pipeline.fire_timers()  # as the worker's timer does between batches

    asyncio.run(scenario())


def invited(app: StandInApp) -> dict[str, str]:
    """visitor -> triggered_at of the invitations the worker sent."""
    sent = [orjson.loads(v) for t, v in app.sent if t == "beckon.invitations" and v]
    return {i["visitor_id"]: i["triggered_at"] for i in sent}


def backtest(*batches: Sequence[Click]) -> dict[str, str]:
    result = Result()
    lines = [value for clicks in batches for _, value in clicks]
    run(read_events(lines, result), RULES, Settings().limits(), result)
    return {i["visitor_id"]: i["triggered_at"] for i in result.invitations}


def others(at: int, *names: str) -> list[Click]:
    """Other visitors' page views at ``at``: the stream moving on."""
    return [click(name, 0, "page_view", at) for name in names]


def test_a_visitor_far_ahead_does_not_fire_the_others_instants_early() -> None:
    app = StandInApp()
    first = [click("fast", 0, "page_view", T0 + HOUR), click("v1", 0, "page_view", T0)]
    second = [click("v1", 1, "page_view", T0 + 16 * SECOND)]  # a new view: dwell anew
    later = others(T0 + 60 * SECOND, "a", "b", "c", "d")

    feed(pipeline_on(app), first, second, later)

    # 30 s from the second view, as the backtest says; not from the first.
    assert invited(app)["v1"] == format_instant(T0 + 46 * SECOND)
    assert backtest(first, second, later)["v1"] == invited(app)["v1"]


def test_journeys_saved_ahead_of_an_unread_backlog_wait_for_it() -> None:
    app = StandInApp()
    feed(pipeline_on(app), others(T0 + 100 * SECOND, "a", "b", "c"))
    # A restart: the next worker reads, from the committed offset, records older than
    # the journeys it recovers.
    restarted = pipeline_on(app)
    asyncio.run(restarted.rebuild_wakeups())
    backlog = [click("v1", 0, "page_view", T0)]
    rest = [click("v1", 1, "page_view", T0 + 16 * SECOND)]
    later = others(T0 + 60 * SECOND, "d", "e", "f")

    feed(restarted, backlog)
    assert "v1" not in invited(app)  # its dwell instant is not due yet
    feed(restarted, rest, later)

    assert invited(app)["v1"] == format_instant(T0 + 46 * SECOND)


def test_a_restart_with_nothing_to_read_is_not_dragged_by_a_fast_visitors_journey() -> None:
    app = StandInApp()
    before = [click("fast", 0, "page_view", T0 + 3 * HOUR), *others(T0 - SECOND, "a", "b"),
              *others(T0, "c", "d"), click("v1", 0, "page_view", T0)]  # fmt: skip
    # The clock resumes where the stream was, not at the fast visitor's time.
    restarted = restarted_at_the_end(app, before)
    feed(restarted, [])
    assert "v1" not in invited(app)  # its 30 s of dwell are not over
    after = [click("v1", 1, "page_leave", T0 + 10 * SECOND)]  # it left after 10 s
    feed(restarted, after, others(T0 + 60 * SECOND, "a", "b", "c"))

    assert "v1" not in invited(app)
    assert "v1" not in backtest(before, after, others(T0 + 60 * SECOND, "a", "b", "c"))


def test_a_restart_after_a_replay_ended_fires_its_last_instants_once_idle() -> None:
    app = StandInApp()
    ended = [*others(T0 - 30 * 60_000, "a", "b", "c"), click("v1", 0, "page_view", T0)]
    wall = [WALL]
    restarted = restarted_at_the_end(app, ended, lambda: wall[0], clock_idle_s=1)
    wall[0] = WALL + 35 * SECOND  # idle 1 s, then 30 s of dwell and the 2 s grace
    restarted.handled_at = -1.0  # no batch for a while: the timer takes its round
    asyncio.run(restarted.fire_timers())

    # Not half an hour later, when the lagging median of the last visitors would get there.
    assert invited(app)["v1"] == format_instant(T0 + 30 * SECOND) == backtest(ended)["v1"]


def test_a_visitor_whose_clock_is_hours_slow_gets_its_own_timing() -> None:
    app = StandInApp()
    slow = T0 - 3 * HOUR
    first = [*others(T0, "a", "b", "c"), click("s", 0, "page_view", slow)]
    second = [
        *others(T0 + 20 * SECOND, "a", "b", "c"),
        click("s", 1, "page_leave", slow + 10 * SECOND),
    ]
    third = others(T0 + 60 * SECOND, "a", "b", "c")

    feed(pipeline_on(app), first, second, third)

    # It left after 10 s: no invitation, live or in the backtest. (Timed by the others'
    # clock, its instant was due three hours before it was read.)
    assert "s" not in invited(app)
    assert "s" not in backtest(first, second, third)


def test_the_outliers_are_counted(monkeypatch: Any) -> None:
    app = StandInApp()
    pipeline = pipeline_on(app)
    feed(pipeline, others(T0, "a", "b", "c"), [click("fast", 0, "page_view", T0 + HOUR)])
    feed(pipeline, [click("a", 1, "page_ping", T0 - 10 * SECOND)])  # older than a's journey

    counted = pipeline.metrics.event_time
    assert counted.labels("clock_ahead")._value.get() == 1
    assert counted.labels("late")._value.get() == 1


def test_journeys_of_visitors_gone_past_the_horizon_are_deleted() -> None:
    app = StandInApp()
    pipeline = pipeline_on(app)
    feed(pipeline, [click("old", 0, "page_view", T0)])
    feed(pipeline, others(T0 + 31 * 24 * HOUR + 2 * HOUR, "a", "b", "c"))  # past 30 days + margin
    assert b"old" in app.table

    asyncio.run(pipeline.sweep_journeys())

    assert b"old" not in app.table
    assert {b"a", b"b", b"c"} <= set(app.table)
    assert ("journeys-changelog", None) in app.sent  # the deletion is on the changelog


def test_journeys_within_the_horizon_are_kept() -> None:
    app = StandInApp()
    pipeline = pipeline_on(app)
    feed(pipeline, [click("recent", 0, "page_view", T0)], others(T0 + 29 * 24 * HOUR, "a", "b"))

    asyncio.run(pipeline.sweep_journeys())

    assert b"recent" in app.table


def test_the_clock_catching_up_does_not_fire_a_visitor_early() -> None:
    # From bench/soak (docs/reliability.md): a quiet night leaves the median minutes
    # behind; newer visitors then push the stale ones out and it catches up at once.
    stale = [click(f"s{i}", 0, "page_view", T0 + i) for i in range(16)]
    later = T0 + 30 * 60 * SECOND
    v_view = [click("v", 0, "page_view", later)]  # read while the median is ~T0
    newcomers = [click(f"n{i}", 0, "page_view", later + 4 * SECOND) for i in range(16)]
    v_leave = [click("v", 1, "page_leave", later + 5 * SECOND)]  # before its 30 s dwell
    app = StandInApp()

    feed(pipeline_on(app), stale, v_view, newcomers, v_leave)

    assert "v" not in backtest(stale, v_view, newcomers, v_leave)
    assert "v" not in invited(app)


def test_the_clock_catching_up_does_not_fire_a_slow_visitor_early() -> None:
    # The same with a visitor whose clock is three hours slow (tests/integration/worker/
    # test_event_time_live.py found it on the real broker).
    stale = [click(f"s{i}", 0, "page_view", T0 + i) for i in range(16)]
    later = T0 + 30 * 60 * SECOND
    slow = later - 3 * HOUR
    v_view = [click("v", 0, "page_view", slow), click("w", 0, "page_view", later)]
    newcomers = [click(f"n{i}", 0, "page_view", later + 4 * SECOND) for i in range(16)]
    v_leave = [click("v", 1, "page_leave", slow + 5 * SECOND)]
    app = StandInApp()

    feed(pipeline_on(app), stale, v_view, newcomers, v_leave)

    assert "v" not in backtest(stale, v_view, newcomers, v_leave)
    assert "v" not in invited(app)
