"""`beckon backtest` and `beckon rules validate` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from schemas.invitations import DECISION, INVITATION

RULES = """
rules:
  - id: pricing-hesitation
    priority: 10
    location: {include: ["https://shop.example/pricing*"]}
    trigger: {dwell_seconds: 30}
    message: {text: "Hi {first_name|there}, any questions about our plans?"}
    queue: sales
"""
T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z


def _event(
    n: int, kind: str, ts: int, url: str = "https://shop.example/pricing", visitor: str = "v1"
) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "type": kind,
            "visitor_id": visitor,
            "site_id": "shop",
            "ts": ts,
            "url": url,
        }
    )


def _beckon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_backtest_writes_invitations_decisions_and_a_summary(tmp_path: Path) -> None:
    rules, events = tmp_path / "rules.yaml", tmp_path / "events.jsonl"
    rules.write_text(RULES)
    lines = [
        _event(3, "page_ping", T0 + 20_000),  # file order is not time order
        _event(1, "page_view", T0),
        b"{not json",
        _event(2, "page_ping", T0 + 10_000),
    ]
    events.write_bytes(b"\n".join(lines) + b"\n")
    out, decisions = tmp_path / "out.jsonl", tmp_path / "decisions.jsonl"

    done = _beckon("backtest", "--rules", str(rules), "--events", str(events),
                   "--out", str(out), "--decisions", str(decisions))  # fmt: skip

    assert done.returncode == 0, done.stderr
    [invitation] = [INVITATION.validate_json(line) for line in out.read_bytes().splitlines()]
    assert invitation.rule_id == "pricing-hesitation"
    assert invitation.triggered_at == "2025-12-01T10:00:30.000Z"
    assert invitation.message == "Hi there, any questions about our plans?"
    [decision] = [DECISION.validate_json(line) for line in decisions.read_bytes().splitlines()]
    assert decision.outcome == "invited"
    assert decision.invitation_id == invitation.invitation_id
    assert "pricing-hesitation" in done.stderr
    assert "3 events, 1 visitors, 1 bad lines, 1 invitations" in done.stderr
    assert "bad line 3:" in done.stderr


def test_backtest_without_out_writes_invitations_to_standard_output(tmp_path: Path) -> None:
    rules, events = tmp_path / "rules.yaml", tmp_path / "events.jsonl"
    rules.write_text(RULES)
    events.write_bytes(_event(1, "page_view", T0) + b"\n" + _event(2, "page_ping", T0 + 29_000))
    done = _beckon("backtest", "--rules", str(rules), "--events", str(events))
    assert done.returncode == 0, done.stderr
    assert [orjson.loads(line)["rule_id"] for line in done.stdout.splitlines()] == [
        "pricing-hesitation"
    ]


def test_an_invalid_rules_file_stops_the_backtest_naming_the_field(tmp_path: Path) -> None:
    rules, events = tmp_path / "rules.yaml", tmp_path / "events.jsonl"
    rules.write_text(RULES.replace("dwell_seconds: 30", "dwell_secs: 30"))
    events.write_bytes(_event(1, "page_view", T0))
    done = _beckon("backtest", "--rules", str(rules), "--events", str(events))
    assert done.returncode == 2
    assert "rules[0] (id=pricing-hesitation).trigger.dwell_secs" in done.stderr
    assert done.stdout == ""


def test_rules_validate_reports_the_count_and_version(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    done = _beckon("rules", "validate", str(rules))
    assert done.returncode == 0
    assert "1 rules (1 enabled), version " in done.stdout


def test_rules_validate_shows_each_queue_budget(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("queues: {sales: {budget: {invitations: 20, per: minute}}}\n" + RULES)
    done = _beckon("rules", "validate", str(rules))
    assert done.returncode == 0, done.stderr
    assert "queue sales: at most 20 invitations per minute" in done.stdout


def test_a_file_in_time_order_streams_and_a_shuffled_one_gives_the_same_output(
    tmp_path: Path,
) -> None:
    import random

    from bench.clickstream import RULES_YAML, generate
    from schemas.rules import load_rules
    from streams.backtest import backtest_file
    from streams.core.engine import Limits
    from streams.core.rules import CompiledRules

    lines = list(generate(5_000, 400, seed=3))
    ordered, shuffled = tmp_path / "ordered.jsonl", tmp_path / "shuffled.jsonl"
    ordered.write_bytes(b"\n".join(lines) + b"\n")
    random.Random(5).shuffle(lines)
    shuffled.write_bytes(b"\n".join(lines) + b"\n")
    rules = CompiledRules.of(load_rules(RULES_YAML))

    streamed = backtest_file(ordered, rules, Limits(), show_progress=False)
    sorted_ = backtest_file(shuffled, CompiledRules.of(load_rules(RULES_YAML)), Limits(),
                            show_progress=False)  # fmt: skip

    assert streamed.invitations, "the sample should invite someone"
    assert streamed.invitations == sorted_.invitations
    assert streamed.decisions == sorted_.decisions
    assert (streamed.events, streamed.visitors) == (sorted_.events, sorted_.visitors)


def test_backtest_with_capacity_suppresses_where_the_queue_had_none(tmp_path: Path) -> None:
    rules, events, capacity = (tmp_path / n for n in ("r.yaml", "e.jsonl", "c.jsonl"))
    rules.write_text(RULES.replace("queue: sales", "queue: sales\n    capacity: {min_free: 1}"))
    # Visitor v1 fires at T0 + 30 s, when sales has no free slot; v2 at T0 + 90 s, once
    # a slot came back at T0 + 60 s (seen from T0 + 65 s, after the 5 s delay).
    lines = [_event(1, "page_view", T0), _event(2, "page_ping", T0 + 20_000)]
    lines += [_event(1, "page_view", T0 + 60_000, visitor="v2"),
              _event(2, "page_ping", T0 + 80_000, visitor="v2")]  # fmt: skip
    events.write_bytes(b"\n".join(lines) + b"\n")
    record = {"queue": "sales", "agents_online": 1, "free_slots": 0, "measured_at": T0 - 1000}
    capacity.write_bytes(
        orjson.dumps({**record, "free_slots": 1, "measured_at": T0 + 60_000}) + b"\n"
        + orjson.dumps(record) + b'\n{"queue": "sales", "free_slots": -1}\n'
    )  # fmt: skip
    out, decisions = tmp_path / "out.jsonl", tmp_path / "decisions.jsonl"

    done = _beckon("backtest", "--rules", str(rules), "--events", str(events), "--capacity",
                   str(capacity), "--out", str(out), "--decisions", str(decisions))  # fmt: skip

    assert done.returncode == 0, done.stderr
    made = [DECISION.validate_json(line) for line in decisions.read_bytes().splitlines()]
    assert [(d.visitor_id, d.triggered_at[11:19], d.reason) for d in made] == [
        ("v1", "10:00:30", "no_capacity"),
        ("v2", "10:01:30", None),
    ]
    [invitation] = [INVITATION.validate_json(line) for line in out.read_bytes().splitlines()]
    assert invitation.visitor_id == "v2"
    assert "2 capacity records, 1 bad capacity lines" in done.stderr
    assert "bad capacity line 3: capacity: agents_online: is required" in done.stderr


def test_a_missing_capacity_file_is_named(tmp_path: Path) -> None:
    rules, events = tmp_path / "rules.yaml", tmp_path / "events.jsonl"
    rules.write_text(RULES)
    events.write_bytes(_event(1, "page_view", T0) + b"\n")
    done = _beckon("backtest", "--rules", str(rules), "--events", str(events),
                   "--capacity", str(tmp_path / "nope.jsonl"))  # fmt: skip
    assert done.returncode == 2
    assert "--capacity: no such file" in done.stderr
