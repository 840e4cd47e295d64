"""Capacity on a real broker: a live worker that reads ``beckon.capacity`` decides what
``beckon backtest --capacity`` decides over the same recorded capacity stream, with
invitations and ``no_capacity`` suppressions alike, and a bad capacity record skipped."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from schemas.capacity import validate_capacity
from schemas.instants import parse_instant
from streams.kafka.capacity_topic import publish_capacity
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.integration.helpers import read_topic, start_worker, stop_workers

pytestmark = pytest.mark.integration

T0 = parse_instant("2026-12-01T10:00:00Z")
RULES = """
rules:
  - id: pricing
    priority: 10
    location: {include: ["https://shop.example/pricing"]}
    trigger: {dwell_seconds: 12}
    message: {text: "Questions about our plans?"}
    queue: sales
    capacity: {min_free: 1}
  - id: products
    location: {include: ["https://shop.example/products/*"]}
    trigger: {dwell_seconds: 8}
    message: {text: "Need help choosing?"}
    queue: experts
    capacity: {min_free: 2, max_wait_s: 20, min_agents: 1}
  - id: about
    location: {include: ["https://shop.example/about"]}
    trigger: {dwell_seconds: 5}
    message: {text: "Hello"}
"""
PAGES = (
    "https://shop.example/pricing",
    "https://shop.example/products/tea",
    "https://shop.example/about",
)


def _events(visitors: int) -> list[bytes]:
    """Visitor i views one page at T0 + 17 s·i, pings every 5 s and leaves after 40 s."""
    lines = []
    for i in range(visitors):
        start, url, visitor = T0 + i * 17_000, PAGES[i % 3], f"v{i:03d}"
        for n, (kind, ts) in enumerate(
            [("page_view", start), *(("page_ping", start + s * 1000) for s in range(5, 40, 5)),
             ("page_leave", start + 40_000)]
        ):  # fmt: skip
            lines.append(orjson.dumps({"event_id": f"{visitor}-{n}", "type": kind,
                                       "visitor_id": visitor, "site_id": "shop", "ts": ts,
                                       "url": url}))  # fmt: skip
    return sorted(lines, key=lambda line: orjson.loads(line)["ts"])


def _capacity(until: int) -> list[dict[str, Any]]:
    """Every 5 s: sales has a free slot for a minute, then none for a minute; the experts
    have two or three slots and a wait of 10 s or 30 s, and go silent for three minutes
    (unknown: allowed, by default)."""
    records = []
    for k, at in enumerate(range(T0 - 30_000, until, 5_000)):
        records.append({"queue": "sales", "agents_online": 2, "free_slots": (k // 12 + 1) % 2,
                        "expected_wait_s": None, "measured_at": at})  # fmt: skip
        if not T0 + 300_000 <= at < T0 + 480_000:
            records.append({"queue": "experts", "agents_online": 1, "free_slots": 2 + k % 2,
                            "expected_wait_s": 10.0 if (k // 9) % 2 else 30.0,
                            "measured_at": at})  # fmt: skip
    return records


def _publish_capacity(settings: Settings, records: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(**settings.kafka_python_config(), acks="all")
    try:
        for record in records:
            publish_capacity(producer, settings.topic_capacity, validate_capacity(record))
        # A bad record is skipped (and logged); the worker goes on.
        producer.send(settings.topic_capacity, key=b"sales", value=b'{"queue": "sales"}')
        producer.flush(30)
    finally:
        producer.close()


def _publish_events(settings: Settings, lines: list[bytes]) -> None:
    with Publisher(settings) as pub:
        for line in lines:
            pub.publish_raw(orjson.loads(line)["visitor_id"].encode(), line)


def _backtest(tmp_path: Path, events: list[bytes], capacity: list[dict[str, Any]],
              *flags: str, rules: str = RULES) -> tuple[list[Any], list[Any]]:  # fmt: skip
    """``beckon backtest --capacity``: (invitations, decisions)."""
    paths = {name: tmp_path / f"bt-{name}" for name in ("rules", "events", "capacity", "out",
                                                        "decisions")}  # fmt: skip
    paths["rules"].write_text(rules)
    paths["events"].write_bytes(b"".join(line + b"\n" for line in events))
    lines = [orjson.dumps(record) for record in capacity] + [b'{"queue": "sales"}']
    paths["capacity"].write_bytes(b"".join(line + b"\n" for line in lines))
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "backtest", "--rules", str(paths["rules"]),
         "--events", str(paths["events"]), "--capacity", str(paths["capacity"]),
         "--out", str(paths["out"]), "--decisions", str(paths["decisions"]), *flags],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 bad capacity lines" in done.stderr
    invitations, decisions = (
        [orjson.loads(line) for line in paths[name].read_bytes().splitlines()]
        for name in ("out", "decisions")
    )
    return invitations, decisions


def _identities(invitations: list[Any]) -> set[tuple[str, str]]:
    return {(i["invitation_id"], i["triggered_at"]) for i in invitations}


def _outcomes(decisions: list[Any]) -> set[tuple[str, str, str | None]]:
    return {(d["invitation_id"], d["rule_id"], d["reason"]) for d in decisions}


def _decided_live(
    settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    scenario: Callable[[], None],
    expected: list[tuple[str, str | None]],
    order: str,
) -> list[Any]:
    """The decisions of a worker on ``tmp_path``'s rules.yaml that ``scenario`` plays to
    once it has joined its group and read the capacity topic, sorted by ``order``; their
    (visitor, reason) must be ``expected``."""
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, tmp_path / "rules.yaml", log)
        try:
            time.sleep(8)  # the worker joins its group and reads the capacity topic
            scenario()
            got = read_topic(settings, settings.topic_decisions, len(expected), timeout_s=30)
        finally:
            stop_workers(worker)

    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    decisions = sorted((orjson.loads(r.value) for r in got), key=lambda d: d[order])
    assert [(d["visitor_id"], d["reason"]) for d in decisions] == expected, log_text[-3000:]
    return decisions


def test_a_replay_with_recorded_capacity_gives_the_backtests_decisions(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    events = _events(48)
    capacity = _capacity(T0 + 48 * 17_000 + 60_000)
    invitations, decisions = _backtest(tmp_path, events, capacity)
    reasons = [d["reason"] for d in decisions]
    assert reasons.count("no_capacity") >= 5 and reasons.count(None) >= 10, reasons
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    _publish_capacity(settings, capacity)  # the worker reads it all when it starts
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, rules, log)
        try:
            _publish_events(settings, events)
            got = read_topic(settings, settings.topic_decisions, 10**9, timeout_s=90,
                             enough=lambda rs: _outcomes([orjson.loads(r.value) for r in rs])
                             >= _outcomes(decisions), linger_s=3)  # fmt: skip
            sent = read_topic(settings, settings.topic_invitations, len(invitations), 30)
        finally:
            stop_workers(worker)

    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert _outcomes([orjson.loads(r.value) for r in got]) == _outcomes(decisions), log_text[-3000:]
    assert _identities([orjson.loads(r.value) for r in sent]) == _identities(invitations)
    assert "must be the record's queue" in log_text or "agents_online: is required" in log_text


def test_agents_coming_and_going_live_give_the_backtests_decisions(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """Wall-clock traffic: capacity published while the worker runs, read as it comes."""
    settings, env = live
    env = {**env, "BECKON_CAPACITY_DELAY_S": "1"}
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events: list[bytes] = []
    capacity: list[dict[str, Any]] = []

    def agents(free: int) -> None:
        record = {"queue": "sales", "agents_online": free, "free_slots": free,
                  "expected_wait_s": 0.0, "measured_at": int(time.time() * 1000)}  # fmt: skip
        capacity.append(record)
        _publish_capacity(settings, [record])
        time.sleep(1.5)  # measured more than the delay (1 s) before the visitor's instant

    def visit(visitor: str) -> None:
        now = int(time.time() * 1000)
        lines = [orjson.dumps({"event_id": f"{visitor}-{n}", "type": kind, "visitor_id": visitor,
                               "site_id": "shop", "ts": now + n * 5_000, "url": PAGES[0]})
                 for n, kind in enumerate(("page_view", "page_ping", "page_ping"))]  # fmt: skip
        events.extend(lines)
        _publish_events(settings, lines[:1])
        time.sleep(5)
        _publish_events(settings, lines[1:2])
        time.sleep(5)
        _publish_events(settings, lines[2:])

    def scenario() -> None:
        agents(0)
        visit("gone-away")  # sales has no free slot at its instant: no_capacity
        time.sleep(4)  # past gone-away's instant (12 s after its view) and its decision
        agents(1)
        visit("welcome")  # an agent is back: invited

    expected = [("gone-away", "no_capacity"), ("welcome", None)]
    live_decisions = _decided_live(settings, env, tmp_path, scenario, expected, "visitor_id")
    _, decisions = _backtest(tmp_path, events, capacity, "--capacity-delay-s", "1")
    assert _outcomes(live_decisions) == _outcomes(decisions)


def test_a_delivery_service_whose_agents_come_and_go_drives_the_live_decisions(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """The reference delivery service publishes sales' capacity as its simulated agents
    come and go; the worker's decisions are backtest --capacity's over what it published."""
    import asyncio

    import aiohttp

    from tests.integration.helpers import serving_delivery

    settings, env = live
    env = {**env, "BECKON_CAPACITY_DELAY_S": "1"}
    delivery = settings.model_copy(update={
        "delivery_simulate_agents": "sales=0", "delivery_capacity_every_s": 0.5,
        "delivery_group": f"{settings.app_id}-delivery",
    })  # fmt: skip
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
rules:
  - id: pricing
    location: {include: ["*/pricing"]}
    trigger: {dwell_seconds: 3}
    message: {text: "Questions?"}
    queue: sales
    capacity: {}
""")
    events: list[bytes] = []

    def visit(visitor: str) -> None:
        now = int(time.time() * 1000)
        line = orjson.dumps({"event_id": f"{visitor}-0", "type": "page_view",
                             "visitor_id": visitor, "site_id": "shop", "ts": now,
                             "url": PAGES[0]})  # fmt: skip
        events.append(line)
        _publish_events(settings, [line])

    async def scenario() -> None:
        async with serving_delivery(delivery) as base, aiohttp.ClientSession() as client:
            for visitor, agents in (("nobody", None), ("welcome", 2), ("gone", 0)):
                if agents is not None:
                    put = await client.put(f"{base}/v1/agents/simulated",
                                           json={"queue": "sales", "agents": agents})  # fmt: skip
                    assert put.status == 200
                await asyncio.sleep(2)  # published, and more than the delay (1 s) old
                await asyncio.to_thread(visit, visitor)
                await asyncio.sleep(5)  # its instant (3 s) and decision (grace 1 s) pass

    expected = [("nobody", "no_capacity"), ("welcome", None), ("gone", "no_capacity")]
    live_decisions = _decided_live(
        settings,
        env,
        tmp_path,
        lambda: asyncio.run(asyncio.wait_for(scenario(), 90)),
        expected,
        "triggered_at",
    )
    published = read_topic(settings, settings.topic_capacity, 10**9, timeout_s=5)
    capacity = [orjson.loads(r.value) for r in published]
    assert {c["agents_online"] for c in capacity} == {0, 2}
    _, decisions = _backtest(
        tmp_path, events, capacity, "--capacity-delay-s", "1", rules=rules.read_text()
    )
    assert _outcomes(live_decisions) == _outcomes(decisions)
