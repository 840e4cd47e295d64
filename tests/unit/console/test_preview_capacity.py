"""The console's preview decides capacity clauses as `beckon backtest --capacity` does,
with capacity read from either source: an uploaded capacity recording, or the capacity
topic's records beside the last hours of traffic (the Kafka readers are stood in for
here; tests/integration/console reads a real broker)."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from typing import Any, NamedTuple

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.instants import parse_instant
from schemas.rules import load_rules, rule_to_json
from streams.backtest import Result, read_capacity, read_events, run
from streams.console import capacity as console_capacity
from streams.console import preview as preview_module
from streams.console import server
from streams.console.capacity import folded, uploaded
from streams.console.preview import run_preview
from streams.core.capacity import history_ms
from streams.core.engine import Limits
from streams.core.rulebook import RuleBook
from streams.core.rules import CompiledRules
from streams.settings import Settings

T0 = parse_instant("2026-12-01T10:00:00Z")
S = 1_000
TOKEN = "unit-test-token"

# The draft asks for a free slot on `sales`; the set in force does not ask.
DRAFT = """
rules:
  - id: pricing
    location: {include: ["*/pricing"]}
    trigger: {dwell_seconds: 10}
    message: {text: "Questions?"}
    queue: sales
    capacity: {min_free: 1}
"""
IN_FORCE = DRAFT.replace("    capacity: {min_free: 1}\n", "")


def event(visitor: str, seconds: int) -> bytes:
    return orjson.dumps({"event_id": f"{visitor}-{seconds}", "type": "page_view",
                         "visitor_id": visitor, "site_id": "shop", "ts": T0 + seconds * S,
                         "url": "https://shop.example/pricing"})  # fmt: skip


def record(seconds: int, free: int, queue: str = "sales") -> bytes:
    return orjson.dumps({"queue": queue, "agents_online": 2, "free_slots": free,
                         "measured_at": T0 + seconds * S})  # fmt: skip


# Each visitor's rule fires 10 s after the view. v1 at 10 s sees sales's record of -30 s
# (no free slot): no_capacity. v2 at 110 s sees the one of 60 s (a free slot): invited.
# v3 at 410 s finds only records over the 120 s max age: unknown, which allows.
EVENTS = [event("v3", 400), event("v1", 0), event("v2", 100)]
CAPACITY = [record(60, free=1), b'{"queue": "sales"}', b"", record(-30, free=0),
            record(0, free=5, queue="support")]  # fmt: skip


def rules(text: str) -> CompiledRules:
    return CompiledRules.of(load_rules(textwrap.dedent(text)))


def backtest(events: list[bytes], capacity: list[bytes], text: str) -> dict[str, Any]:
    """`beckon backtest --capacity` over the same lines: the pricing rule's figures."""
    result = Result()
    view = read_capacity(capacity, result)
    run(read_events(events, result), rules(text), Limits(), result, capacity=view)
    return {
        "invitations": sum(d["outcome"] == "invited" for d in result.decisions),
        "suppressed": dict(Counter(d["reason"] for d in result.decisions if d["reason"])),
    }


def figures(answer: dict[str, Any], name: str) -> dict[str, Any]:
    [row] = answer["rules"]
    return {k: row[name][k] for k in ("invitations", "suppressed")}


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many processes share the work, forking even for a few lines: a forked child
    decides with the capacity it inherits."""
    monkeypatch.setattr(preview_module, "MIN_SPLIT", 0)
    n: int = request.param
    return n


def test_uploaded_capacity_suppresses_as_the_backtest_with_capacity_does(processes: int) -> None:
    answer = run_preview(EVENTS, rules(DRAFT), rules(IN_FORCE), Limits(),
                         processes=processes, capacity=uploaded(CAPACITY))  # fmt: skip

    assert figures(answer, "draft") == {"invitations": 2, "suppressed": {"no_capacity": 1}}
    assert figures(answer, "draft") == backtest(EVENTS, CAPACITY, DRAFT)
    assert figures(answer, "in_force") == {"invitations": 3, "suppressed": {}}
    assert figures(answer, "in_force") == backtest(EVENTS, CAPACITY, IN_FORCE)
    [row] = answer["rules"]
    assert [(d["visitor_id"], d["reason"]) for d in row["sample"]] == [
        ("v1", "no_capacity"), ("v2", None), ("v3", None),
    ]  # fmt: skip


def test_bad_capacity_lines_are_counted_and_quoted_like_bad_events() -> None:
    answer = run_preview(EVENTS, rules(DRAFT), rules(IN_FORCE), Limits(),
                         capacity=uploaded(CAPACITY))  # fmt: skip

    capacity = answer["capacity"]
    assert {k: v for k, v in capacity.items() if k != "bad_examples"} == {
        "records": 3, "queues": 2, "oldest": "2026-12-01T09:59:30.000Z", "bad_lines": 1,
        "unknown": "allow",
    }  # fmt: skip
    [example] = capacity["bad_examples"]
    assert example.startswith("line 2: capacity: ")
    assert "agents_online" in example


def test_without_capacity_every_queue_is_unknown_as_the_setting_says() -> None:
    deny = Limits(capacity_unknown_allows=False)

    answer = run_preview(EVENTS, rules(DRAFT), rules(IN_FORCE), deny)

    assert figures(answer, "draft") == {"invitations": 0, "suppressed": {"no_capacity": 3}}
    assert answer["capacity"] == {"records": 0, "queues": 0, "oldest": None, "bad_lines": 0,
                                  "bad_examples": [], "unknown": "deny"}  # fmt: skip


class Record(NamedTuple):
    """A capacity-topic record as kafka-python gives it (the fields that are read)."""

    key: bytes | None
    value: bytes | None
    offset: int


def on_topic(lines: list[bytes]) -> list[Record]:
    """The valid lines as records keyed by their queue, a tombstone, and one record whose
    key is not its queue."""
    out = [Record(orjson.loads(v)["queue"].encode(), v, n) for n, v in enumerate(lines) if v]
    return [*out, Record(b"sales", None, 90), Record(b"support", record(5, free=0), 91)]


def test_topic_records_suppress_as_the_backtest_with_capacity_does(processes: int) -> None:
    valid = [line for line in CAPACITY if line and b"free_slots" in line]

    answer = run_preview(EVENTS, rules(DRAFT), rules(IN_FORCE), Limits(),
                         processes=processes, capacity=folded(on_topic(valid)))  # fmt: skip

    assert figures(answer, "draft") == {"invitations": 2, "suppressed": {"no_capacity": 1}}
    assert figures(answer, "draft") == backtest(EVENTS, valid, DRAFT)
    assert answer["capacity"]["records"] == 3
    assert answer["capacity"]["bad_lines"] == 1
    [example] = answer["capacity"]["bad_examples"]
    assert example.startswith("offset 91: capacity: the key (b'support') must be")


# --- through the API --------------------------------------------------------------------


def _app(
    monkeypatch: pytest.MonkeyPatch, topic: list[Record]
) -> tuple[web.Application, list[tuple[int, int]]]:
    """The console's API with the rules topic holding IN_FORCE, the clickstream holding
    EVENTS, and the capacity topic holding ``topic``; the capacity reads are recorded."""
    book = RuleBook()
    for rule in load_rules(textwrap.dedent(IN_FORCE)):
        book.apply(rule.id.encode(), rule_to_json(rule))
    reads: list[tuple[int, int]] = []

    def recent_records(settings: Settings, since_ms: int, most: int) -> list[Record]:
        reads.append((since_ms, most))
        return topic

    monkeypatch.setattr(server, "read_rules", lambda settings: book)
    monkeypatch.setattr(preview_module, "read_recent", lambda *a, **k: list(EVENTS))
    monkeypatch.setattr(console_capacity, "recent_records", recent_records)
    settings = Settings(bootstrap="localhost:1", console_token=TOKEN)  # type: ignore[arg-type]
    app = web.Application()
    server.add_console(app, settings, lambda: [])
    return app, reads


def _post(app: web.Application, **kwargs: Any) -> tuple[int, Any]:
    async def scenario() -> tuple[int, Any]:
        async with TestClient(TestServer(app)) as client:
            r = await client.post("/api/rules/preview", headers={"Authorization":
                                  f"Bearer {TOKEN}"}, **kwargs)  # fmt: skip
            return r.status, await r.json()

    return asyncio.run(scenario())


def test_the_last_hours_are_previewed_with_the_capacity_topics_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    valid = [line for line in CAPACITY if line and b"free_slots" in line]
    app, reads = _app(monkeypatch, on_topic(valid))

    status, answer = _post(app, json={"yaml": DRAFT, "source": {"hours": 2}})

    assert status == 200, answer
    assert figures(answer, "draft") == backtest(EVENTS, valid, DRAFT)
    assert figures(answer, "draft")["suppressed"] == {"no_capacity": 1}
    assert answer["capacity"]["records"] == 3
    # From the window's start and a live worker's history before it, the newest at most.
    [(since, most)] = reads
    limits = Settings().limits()
    assert most == Settings().console_preview_max_capacity
    window = 2 * 3_600_000 + history_ms(limits.capacity_delay_ms, limits.capacity_max_age_ms)
    assert abs(server.now_ms() - window - since) < 60_000


def test_an_uploaded_recording_is_previewed_with_its_capacity_recording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, reads = _app(monkeypatch, [])
    form = aiohttp.FormData()
    form.add_field("request", orjson.dumps({"yaml": DRAFT}), filename="request.json",
                   content_type="application/json")  # fmt: skip
    form.add_field("events", b"\n".join(EVENTS), filename="events.jsonl")
    form.add_field("capacity", b"\n".join(CAPACITY), filename="capacity.jsonl")

    status, answer = _post(app, data=form)

    assert status == 200, answer
    assert figures(answer, "draft") == backtest(EVENTS, CAPACITY, DRAFT)
    assert figures(answer, "draft")["suppressed"] == {"no_capacity": 1}
    assert (answer["capacity"]["records"], answer["capacity"]["bad_lines"]) == (3, 1)
    assert reads == []  # the topic is not read for an upload


def test_a_capacity_recording_without_uploaded_events_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, _ = _app(monkeypatch, [])
    body = {"yaml": DRAFT, "source": {"hours": 2, "capacity": b"\n".join(CAPACITY).decode()}}

    status, answer = _post(app, json=body)

    assert status == 422
    assert "capacity recording goes with uploaded events" in answer["error"]
