"""`beckon backtest` split by visitor across processes gives what one process gives."""

from __future__ import annotations

import mmap
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cachetools import FIFOCache

from bench.clickstream import RULES_YAML, generate
from schemas.errors import ProcessFailed
from schemas.rules import load_rules
from streams import backtest
from streams.backtest import Result, backtest_file
from streams.core import profile
from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from tests.helpers import descendants

RULES = CompiledRules.of(load_rules(RULES_YAML))
DAY, MINUTE, SECOND = 86_400_000, 60_000, 1_000
T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z


def _bad_lines(lines: list[bytes]) -> list[bytes]:
    """Every third line of ``lines`` made bad in a way the routing reads (a visitor and a
    time, so the line goes to its visitor's process, which counts it), then blank lines
    and lines that are no JSON: more bad lines than are quoted, in no time order."""
    out = []
    for n, line in enumerate(lines):
        data = orjson.loads(line)
        if n % 3 == 0:
            data["url"] = ""  # too short
        elif n % 3 == 1:
            data["type"] = "page_view_typo"
        else:
            data["scroll_pct"] = "half"
        out.append(orjson.dumps(data))
    return [*out, b"", b"   ", b"{not json", b"[1, 2]"]


def _write(path: Path, lines: list[bytes], seed: int) -> Path:
    """``lines`` with the bad ones shuffled in (a time-ordered file stays time-ordered
    among its events)."""
    rng = random.Random(seed)
    bad = _bad_lines(rng.sample(lines, 30))
    out = list(lines)
    for line in bad:
        out.insert(rng.randrange(len(out) + 1), line)
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def _run(path: Path, processes: int, **kwargs: Any) -> Result:
    return backtest_file(path, RULES, Limits(), show_progress=False, processes=processes, **kwargs)


def _output(result: Result) -> tuple[bytes, bytes]:
    return (
        b"".join(orjson.dumps(r) + b"\n" for r in result.invitations),
        b"".join(orjson.dumps(r) + b"\n" for r in result.decisions),
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return list(generate(20_000, 1_500, seed=11))


@pytest.mark.parametrize("processes", [2, 3])
@pytest.mark.parametrize("order", ["in-time-order", "shuffled"])
def test_a_split_backtest_equals_one_process(
    processes: int, order: str, recorded: list[bytes], tmp_path: Path
) -> None:
    lines = list(recorded)
    if order == "shuffled":  # one process then reads the file whole and sorts it
        random.Random(5).shuffle(lines)
    path = _write(tmp_path / "events.jsonl", lines, seed=7)

    one, split = _run(path, 1), _run(path, processes)

    assert len(one.invitations) > 100 and one.bad_lines == 32
    assert len(one.bad_examples) == backtest.MAX_EXAMPLES
    assert split == one  # every count and example, in order
    assert _output(split) == _output(one)


def test_a_split_backtest_with_capacity_equals_one_process(
    recorded: list[bytes], tmp_path: Path
) -> None:
    capped = RULES_YAML.replace("queue: sales\n", "queue: sales\n    capacity: {min_free: 1}\n")
    assert capped != RULES_YAML
    rules = CompiledRules.of(load_rules(capped))
    start = orjson.loads(recorded[0])["ts"]
    records = [
        {
            "queue": "sales",
            "agents_online": 2,
            "free_slots": n % 2,
            "measured_at": start + n * MINUTE,
        }
        for n in range(0, 24 * 60, 7)
    ]
    capacity = tmp_path / "capacity.jsonl"
    capacity.write_bytes(b"\n".join(map(orjson.dumps, records)) + b'\n{"queue": "x"}\n')
    path = _write(tmp_path / "events.jsonl", recorded, seed=3)

    def run(processes: int) -> Result:
        return backtest_file(
            path, rules, Limits(), show_progress=False, capacity=capacity, processes=processes
        )

    one = run(1)
    assert {d["reason"] for d in one.decisions} >= {"no_capacity", None}
    assert (one.capacity_records, one.bad_capacity_lines) == (len(records), 1)
    assert run(2) == one


@pytest.mark.parametrize("order", ["in-time-order", "shuffled"])
def test_a_split_backtest_with_budgets_equals_one_process(
    order: str, recorded: list[bytes], tmp_path: Path
) -> None:
    """Budgets are decided over every visitor's invitations, after the parts add up."""
    budgeted = "queues: {sales: {budget: {invitations: 2, per: hour}}}\n" + RULES_YAML
    rules = CompiledRules.of(load_rules(budgeted))
    lines = list(recorded)
    if order == "shuffled":
        random.Random(9).shuffle(lines)
    path = _write(tmp_path / "events.jsonl", lines, seed=5)

    def run(processes: int) -> Result:
        return backtest_file(path, rules, Limits(), show_progress=False, processes=processes)

    one, unbudgeted = run(1), _run(path, 1)
    held = [d for d in one.decisions if d["reason"] == "budget"]
    assert len(held) > 10
    # exactly the invitations the budget held back are gone, their decisions suppressed
    assert len(one.invitations) == len(unbudgeted.invitations) - len(held)
    assert {d["invitation_id"] for d in held} <= {
        i["invitation_id"] for i in unbudgeted.invitations if i["queue"] == "sales"
    }
    assert run(2) == one
    assert _output(run(3)) == _output(one)


def _view(n: int, ts: int, visitor: str, presence_s: int | None = None) -> bytes:
    event = {"event_id": f"{visitor}-{n}", "type": "page_view", "visitor_id": visitor,
             "site_id": "s", "ts": ts, "url": "https://shop.example/pricing"}  # fmt: skip
    if presence_s is not None:
        event["presence_s"] = presence_s
    return orjson.dumps(event)


@pytest.mark.parametrize("sweep_ms", [DAY, 7 * SECOND], ids=["daily", "every-7-s"])
def test_forgetting_past_the_horizon_cannot_change_a_split_backtest(
    sweep_ms: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a horizon shorter than a presence window, a journey forgotten (its instants
    fired to the end of time) and one the engine restarts (its instants after the next
    event dropped) differ; so do they when an event comes again after the horizon. Where
    forgetting falls must then hang on the visitor's own events, not on how many events
    of other visitors one process happened to feed."""
    monkeypatch.setattr(backtest, "SWEEP_MS", sweep_ms)
    rules = CompiledRules.of(load_rules(
        "rules:\n  - id: dwell\n    trigger: {dwell_seconds: 40}\n    message: {text: Hi}\n"
    ))  # fmt: skip
    limits = Limits(journey_ttl_ms=30 * SECOND, presence_ms=30 * SECOND)
    rng = random.Random(3)
    events: list[tuple[int, bytes]] = []
    for v in range(400):
        visitor, ts = f"v{v}", T0 + rng.randrange(3 * DAY)
        for n in range(rng.randrange(1, 6)):
            events.append((ts, _view(n, ts, visitor, presence_s=60)))
            ts += rng.choice([10 * SECOND, 35 * SECOND, 50 * SECOND, DAY, DAY + 35 * SECOND])
        # the first event again, after the horizon: a copy to the old journey only
        events.append((ts, _view(0, ts, visitor, presence_s=60)))
    events.sort(key=lambda item: item[0])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(line for _, line in events) + b"\n")

    def run(processes: int) -> Result:
        return backtest_file(path, rules, limits, show_progress=False, processes=processes)

    one = run(1)
    assert one.invitations and one.visitors > 400  # some visitors began anew
    assert run(2) == one
    assert run(3) == one


def test_a_visitors_lines_all_go_to_one_process(recorded: list[bytes], tmp_path: Path) -> None:
    """Were a visitor's lines split across processes, its journey would begin twice."""
    path = _write(tmp_path / "events.jsonl", recorded, seed=1)
    visitors = len({orjson.loads(line)["visitor_id"] for line in recorded})
    assert _run(path, 3).visitors == _run(path, 1).visitors == visitors


def _failing(
    monkeypatch: pytest.MonkeyPatch, in_child: Callable[[], object], here: Callable[[], object]
) -> None:
    parent, share = os.getpid(), backtest._share

    def failing(*args: Any) -> Any:
        (here if os.getpid() == parent else in_child)()
        return share(*args)

    monkeypatch.setattr(backtest, "_share", failing)


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (lambda: 1 / 0, "a backtest process failed: ZeroDivisionError: division by zero"),
        (lambda: os.kill(os.getpid(), 9), r"it ended \(killed by SIGKILL\) with no answer"),
        (lambda: os._exit(3), r"it ended \(exit status 3\) with no answer"),
    ],
    ids=["raises", "killed", "exits"],
)
def test_a_failed_child_process_is_a_clear_error(
    failure: Callable[[], object], said: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(generate(500, 50, seed=2)) + b"\n")
    _failing(monkeypatch, in_child=failure, here=lambda: None)
    before = set(descendants(os.getpid()))  # in the full suite: the session's broker
    with pytest.raises(ProcessFailed, match=said):
        _run(path, 2)
    assert set(descendants(os.getpid())) <= before


def test_ctrl_c_kills_the_child_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(generate(500, 50, seed=2)) + b"\n")

    def interrupt() -> None:
        time.sleep(0.5)  # the children are running their shares by now
        raise KeyboardInterrupt

    _failing(monkeypatch, in_child=lambda: time.sleep(60), here=interrupt)
    before = set(descendants(os.getpid()))  # in the full suite: the session's broker
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _run(path, 3)
    assert time.monotonic() - started < 10
    assert set(descendants(os.getpid())) <= before


def test_a_file_without_a_last_newline_splits_as_one_process_reads_it(
    recorded: list[bytes], tmp_path: Path
) -> None:
    """Blank lines first, CRLF line ends, and a last line cut short with no newline: each
    counted (or not) and numbered as one process numbers it."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n \n" + b"\r\n".join(recorded[:3_000]) + b'\r\n{"visitor_id": "v", "ts": 1')
    one = _run(path, 1)
    assert one.bad_lines == 1 and one.bad_examples[0].startswith("line 3003: ")
    assert _run(path, 2) == one
    assert _run(path, 3) == one


def test_a_split_run_parses_the_first_user_agents_before_it_forks(
    recorded: list[bytes], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """device-detector compiles its patterns on first use (seconds): done once, here, the
    children inherit them instead of each compiling them again."""
    parsed = tmp_path / "parsed"
    parse = profile._parse_device

    def counted(user_agent: str) -> str:
        with parsed.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return parse(user_agent)

    monkeypatch.setattr(profile, "_devices", FIFOCache(maxsize=profile.UA_CACHE_SIZE))
    monkeypatch.setattr(profile, "_parse_device", counted)
    path = _write(tmp_path / "events.jsonl", recorded, seed=2)
    agents = {orjson.loads(line).get("user_agent") for line in recorded} - {None}
    assert 1 < len(agents) <= backtest.WARM_AGENTS

    _run(path, 2)

    assert parsed.read_text().split() == [str(os.getpid())] * len(agents)


def test_the_first_user_agents_are_the_models_in_file_order() -> None:
    lines = [
        _view(0, T0, "v1"),
        orjson.dumps({**orjson.loads(_view(1, T0, "v1")), "user_agent": "B"}),
        b'{"user_agent": "not an event"}',
        orjson.dumps({**orjson.loads(_view(2, T0, "v2")), "user_agent": "A"}),
        orjson.dumps({**orjson.loads(_view(3, T0, "v3")), "user_agent": "B"}),
        b"",
    ]
    data = b"\n".join(lines) + b"\n" + orjson.dumps({**orjson.loads(lines[1]), "user_agent": "C"})
    with mmap.mmap(-1, len(data)) as mapped:
        mapped.write(data)
        assert backtest._first_agents(mapped) == ["B", "A"]  # the last line may be cut short
