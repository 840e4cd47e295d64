"""Queue budgets on a real broker: live workers decide what ``beckon backtest`` decides,
invitations and ``budget`` suppressions alike, through a SIGKILL and a restart on the
same group and state dir (docs/contract.md, "Budgets")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.instants import parse_instant
from streams.settings import Settings
from tests.integration.helpers import (
    kill_worker,
    publish_lines,
    read_topic,
    start_worker,
    stop_workers,
)

pytestmark = pytest.mark.integration

T0 = parse_instant("2026-12-01T10:00:00Z")
RULES = """
queues:
  sales: {budget: {invitations: 4, per: minute}}
rules:
  - id: quote
    priority: 10
    location: {include: ["https://shop.example/pricing"]}
    trigger: {dwell_seconds: 5}
    message: {text: "A quote?"}
    queue: sales
  - id: browse
    priority: 1
    location: {include: ["https://shop.example/products/*"]}
    trigger: {dwell_seconds: 3}
    message: {text: "Need help choosing?"}
    queue: sales
  - id: about
    location: {include: ["https://shop.example/about"]}
    trigger: {dwell_seconds: 4}
    message: {text: "Hello"}
"""
PAGES = (
    "https://shop.example/pricing",
    "https://shop.example/products/tea",
    "https://shop.example/about",
)


def _events(visitors: int, start: int) -> list[bytes]:
    """Visitor i views a page at start + 0.9 s·i, pings every 2 s and leaves after 10 s:
    sales gets far more than four invitations a minute, in rounds shared by both rules."""
    lines = []
    for i in range(visitors):
        at, url, visitor = start + i * 900, PAGES[i % 3], f"v{start}-{i:03d}"
        kinds = [("page_view", at), *(("page_ping", at + s * 1000) for s in range(2, 10, 2)),
                 ("page_leave", at + 10_000)]  # fmt: skip
        for n, (kind, ts) in enumerate(kinds):
            lines.append(orjson.dumps({"event_id": f"{visitor}-{n}", "type": kind,
                                       "visitor_id": visitor, "site_id": "shop", "ts": ts,
                                       "url": url}))  # fmt: skip
    return sorted(lines, key=lambda line: orjson.loads(line)["ts"])


def _backtest(tmp_path: Path, events: list[bytes]) -> tuple[list[Any], list[Any]]:
    paths = {name: tmp_path / f"bt-{name}" for name in ("rules", "events", "out", "decisions")}
    paths["rules"].write_text(RULES)
    paths["events"].write_bytes(b"".join(line + b"\n" for line in events))
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "backtest", "--rules", str(paths["rules"]),
         "--events", str(paths["events"]), "--out", str(paths["out"]),
         "--decisions", str(paths["decisions"])],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(  # type: ignore[return-value]
        [orjson.loads(line) for line in paths[name].read_bytes().splitlines()]
        for name in ("out", "decisions")
    )


def _outcomes(decisions: list[Any]) -> set[tuple[str, str, str | None]]:
    return {(d["invitation_id"], d["rule_id"], d["reason"]) for d in decisions}


def test_a_budget_decides_live_as_in_the_backtest_through_a_kill_and_a_restart(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    env = {**env, "BECKON_BUDGET_SLACK_S": "1"}
    first, second = _events(40, T0), _events(40, T0 + 120_000)
    invitations, decisions = _backtest(tmp_path, first + second)
    reasons = [d["reason"] for d in decisions if d["rule_id"] != "about"]
    assert reasons.count("budget") >= 20 and reasons.count(None) >= 8, reasons
    # both rules win tokens, and each loses some: priority decides within a round
    by_rule = {(d["rule_id"], d["reason"]) for d in decisions}
    assert {("quote", None), ("browse", None), ("quote", "budget"), ("browse", "budget")} <= by_rule
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    def decided(records: list[Any]) -> set[tuple[str, str, str | None]]:
        return _outcomes([orjson.loads(r.value) for r in records])

    with (tmp_path / "worker-1.log").open("wb") as log:
        worker = start_worker(env, rules, log)
        publish_lines(settings, first)
        # some of the first part's budget rounds are decided, then the worker dies
        read_topic(settings, settings.topic_decisions, 10**9, timeout_s=90,
                   enough=lambda rs: sum(d[2] == "budget" for d in decided(rs)) >= 5)  # fmt: skip
        kill_worker(worker)
    with (tmp_path / "worker-2.log").open("wb") as log:
        worker = start_worker(env, rules, log)  # the same group and state dir
        try:
            publish_lines(settings, second)
            got = read_topic(settings, settings.topic_decisions, 10**9, timeout_s=120,
                             enough=lambda rs: decided(rs) >= _outcomes(decisions),
                             linger_s=3)  # fmt: skip
            sent = read_topic(settings, settings.topic_invitations, 10**9, timeout_s=10)
        finally:
            stop_workers(worker)

    logs = "".join((tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in (1, 2))
    # A copy may come twice (at least once), but never with another outcome.
    assert decided(got) == _outcomes(decisions), logs[-4000:]
    ids = {orjson.loads(r.value)["invitation_id"] for r in sent}
    assert ids == {i["invitation_id"] for i in invitations}
    assert "budget" not in {orjson.loads(r.value).get("reason") for r in sent}


def test_live_traffic_waits_for_its_round_and_the_highest_priority_wins(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """Wall-clock traffic on 4 partitions, two of them without any record: a budget of
    one an hour; two visitors trigger in the same second, the higher priority wins."""
    settings, env = live
    env = {**env, "BECKON_BUDGET_SLACK_S": "1"}
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("invitations: 4, per: minute", "invitations: 1, per: hour"))
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, rules, log)
        try:
            time.sleep(8)  # the worker joins its group
            # products' rule (3 s) and pricing's (5 s) trigger within the same second
            now = int(time.time() * 1000)
            now -= now % 1000
            lines = [
                orjson.dumps({"event_id": "p0", "type": "page_view", "visitor_id": "low",
                              "site_id": "shop", "ts": now + 2_050, "url": PAGES[1]}),
                orjson.dumps({"event_id": "q0", "type": "page_view", "visitor_id": "high",
                              "site_id": "shop", "ts": now + 100, "url": PAGES[0]}),
            ]  # fmt: skip
            publish_lines(settings, lines)
            got = read_topic(settings, settings.topic_decisions, 2, timeout_s=30)
        finally:
            stop_workers(worker)
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    outcomes = sorted((orjson.loads(r.value)["visitor_id"], orjson.loads(r.value)["reason"])
                      for r in got)  # fmt: skip
    assert outcomes == [("high", None), ("low", "budget")], log_text[-3000:]
