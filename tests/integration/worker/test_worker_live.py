"""The live worker equals the backtest: same invitations (ids and triggered_at) over a
real broker, with poison messages routed to the DLQ while the rest is processed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.clickstream import RULES_YAML, generate
from schemas.instants import format_instant
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.core.engine import Limits
from streams.core.journey import MAX_SEEN_IDS
from streams.core.rules import CompiledRules
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.helpers import free_port
from tests.integration.helpers import (
    dwell_records,
    kill_worker,
    read_topic,
    start_worker,
    stop_workers,
)

pytestmark = pytest.mark.integration


def _publish_lines(pub: Publisher, lines: list[bytes]) -> None:
    """Recorded events, each keyed by its visitor id as the collector keys them."""
    for line in lines:
        pub.publish_raw(orjson.loads(line)["visitor_id"].encode(), line)


def _expected(lines: list[bytes]) -> set[tuple[str, str]]:
    """The backtest's invitations for these lines, as (invitation_id, triggered_at)."""
    result = Result()
    rules = CompiledRules.of(load_rules(RULES_YAML))
    run(read_events(lines, result), rules, Limits(), result)
    return {(i["invitation_id"], i["triggered_at"]) for i in result.invitations}


def _latest(records: list[Any]) -> dict[bytes, Any]:
    """The latest value of every key of a compacted topic's records."""
    return {r.key: orjson.loads(r.value) for r in records if r.value is not None}


def _rules_file(tmp_path: Path) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    return rules


def test_live_worker_gives_the_backtests_invitations_and_routes_poison_to_the_dlq(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    lines = list(generate(4_000, 300, seed=11))
    expected = _expected(lines)
    assert len(expected) > 20, "the sample should invite a fair number of visitors"
    expected_dwell = dwell_records(lines)
    rules = _rules_file(tmp_path)
    poison = [
        (b"v-poison", b"not json"),
        (b"v-poison", orjson.dumps({"event_id": "p1", "type": "teleport"})),
        (b"someone-else", lines[0]),  # keyed by another visitor than its own
        (b"v-poison", b"{" + b" " * 70_000 + b"}"),
    ]
    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, rules, log)
        try:
            with Publisher(settings) as pub:
                for key, value in poison[:2]:
                    pub.publish_raw(key, value)
                _publish_lines(pub, lines)
                for key, value in poison[2:]:
                    pub.publish_raw(key, value)
            records = read_topic(settings, settings.topic_invitations, len(expected), timeout_s=90)
            dead = read_topic(settings, settings.topic_dlq, len(poison), timeout_s=20)
            dwell = read_topic(settings, settings.topic_dwell, 10**9, timeout_s=30,
                          enough=lambda got: _latest(got) == expected_dwell)  # fmt: skip
        finally:
            stop_workers(worker)

    got = [(orjson.loads(r.value)["invitation_id"], orjson.loads(r.value)["triggered_at"])
           for r in records]  # fmt: skip
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert set(got) == expected, log_text[-3000:]
    assert len(got) == len(set(got)), "copies on the topic"
    reasons = sorted(dict(r.headers)["beckon.reason"].decode() for r in dead)
    assert reasons == ["invalid", "invalid", "key_mismatch", "too_large"]
    # Every page and window's dwell aggregate, merged across partitions, as computed offline.
    assert len(expected_dwell) > 50
    assert _latest(dwell) == expected_dwell
    assert all(r.key == orjson.loads(r.value)["visitor_id"].encode() for r in records)


def _rules(rule_id: str, text: str) -> str:
    return f"""
rules:
  - id: {rule_id}
    trigger: {{dwell_seconds: 2}}
    message: {{text: "{text}"}}
"""


def _visit(pub: Publisher, visitor: str) -> int:
    now = int(time.time() * 1000)
    pub.publish({"event_id": f"{visitor}-1", "type": "page_view", "visitor_id": visitor,
                 "site_id": "shop", "ts": now, "url": "https://shop.example/pricing"})  # fmt: skip
    pub.flush()
    return now


def test_rules_applied_mid_stream_take_over_and_dwell_fires_within_grace_without_events(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    from streams.kafka.rules_topic import apply_rules

    settings, env = live
    first = load_rules(_rules("hello-a", "A"))
    apply_rules(settings, first)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--web-port", str(free_port())],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            time.sleep(8)  # the worker joins its group and reads the rules
            with Publisher(settings) as pub:
                t_a = _visit(pub, "visitor-a")
                [a] = read_topic(settings, settings.topic_invitations, 1, timeout_s=30)
                second = load_rules(_rules("hello-b", "B"))
                apply_rules(settings, second)
                time.sleep(3)  # "in force within seconds"
                t_b = _visit(pub, "visitor-b")
                invitations = read_topic(settings, settings.topic_invitations, 2, timeout_s=30)
                decisions = read_topic(settings, settings.topic_decisions, 2, timeout_s=10)
        finally:
            stop_workers(worker)

    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    first_inv = orjson.loads(a.value)
    assert (first_inv["rule_id"], first_inv["message"]) == ("hello-a", "A"), log_text[-2000:]
    assert first_inv["triggered_at"] == format_instant(t_a + 2000)
    # Emitted (the record's own timestamp) within grace + 1 s of the instant, although
    # the visitor sent nothing after its page view.
    assert a.timestamp - (t_a + 2000) <= (settings.grace_s + 1) * 1000
    # The two visitors' records sit on different partitions: match them by visitor.
    by_visitor = {i["visitor_id"]: i for i in (orjson.loads(r.value) for r in invitations)}
    second_inv = by_visitor["visitor-b"]
    assert (second_inv["rule_id"], second_inv["message"]) == ("hello-b", "B")
    assert second_inv["triggered_at"] == format_instant(t_b + 2000)
    versions = {d["visitor_id"]: d["rules_version"] for d in map(_value, decisions)}
    assert versions == {"visitor-a": first.version, "visitor-b": second.version}


def _identities(records: list[Any]) -> list[tuple[str, str]]:
    return [(_value(r)["invitation_id"], _value(r)["triggered_at"]) for r in records]


def _read_until(settings: Settings, expected: set[tuple[str, str]]) -> list[Any]:
    """Invitations until every expected one arrived (or 90 s): copies included."""
    return read_topic(settings, settings.topic_invitations, 10**9, timeout_s=90,
                 enough=lambda records: set(_identities(records)) >= expected)  # fmt: skip


def _value(record: Any) -> Any:
    return orjson.loads(record.value)


def test_kill_9_part_way_and_restart_gives_the_backtests_invitations(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    env = {**env, "BECKON_BROKER_SESSION_TIMEOUT_S": "8"}
    lines = list(generate(6_000, 400, seed=13))
    expected = _expected(lines)
    rules = _rules_file(tmp_path)
    half = len(lines) // 2
    with (tmp_path / "worker.log").open("wb") as log:
        first = start_worker(env, rules, log)
        try:
            with Publisher(settings) as pub:
                _publish_lines(pub, lines[:half])
            # Let it get part-way, then kill it without a chance to commit or flush.
            read_topic(settings, settings.topic_invitations, len(expected) // 4, timeout_s=60)
        finally:
            first.kill()
            first.wait(timeout=30)
        second = start_worker(env, rules, log)
        try:
            with Publisher(settings) as pub:
                _publish_lines(pub, lines[half:])
            records = _read_until(settings, expected)
        finally:
            stop_workers(second)

    got = _identities(records)
    copies = len(got) - len(set(got))
    print(f"kill -9: {len(set(got))} invitations, {copies} copies on the topic")
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert set(got) == expected, log_text[-3000:]


@pytest.mark.parametrize("standby", [0, 1])
def test_a_killed_workers_partitions_are_restored_by_the_other_and_give_the_backtests_invitations(
    live: tuple[Settings, dict[str, str]], tmp_path: Path, standby: int
) -> None:
    # The survivor has no state of the dead worker's partitions on disk: it restores
    # them from their changelogs (standby 0) or has kept a warm copy of them (standby 1).
    # The visitors' journeys span the kill, so a journey restored wrong changes
    # invitations.
    settings, env = live
    env = {**env, "BECKON_BROKER_SESSION_TIMEOUT_S": "8", "BECKON_STANDBY_REPLICAS": str(standby)}
    lines = list(generate(6_000, 400, seed=19))
    expected = _expected(lines)
    rules = _rules_file(tmp_path)
    envs = [{**env, "BECKON_DATA_DIR": str(tmp_path / f"worker-{n}")} for n in (1, 2)]
    half = len(lines) // 2
    with (tmp_path / "worker.log").open("wb") as log:
        doomed, survivor = (start_worker(e, rules, log) for e in envs)
        try:
            time.sleep(10)  # both join; the second's arrival rebalances the partitions
            with Publisher(settings) as pub:
                _publish_lines(pub, lines[:half])
            # Killed once every event so far is committed: what the survivor reads next
            # lies past the dead worker's state, which it has from the changelog alone.
            _wait_all_committed(settings, half, timeout_s=60)
        finally:
            kill_worker(doomed)
        try:
            with Publisher(settings) as pub:
                _publish_lines(pub, lines[half:])
            records = _read_until(settings, expected)
        finally:
            stop_workers(survivor)

    got = _identities(records)
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert set(got) == expected, log_text[-3000:]
    assert log_text.count("Restore complete!") >= 3, "the survivor did not take over"


def test_two_workers_share_the_partitions_and_give_the_backtests_invitations(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    lines = list(generate(6_000, 400, seed=17))
    expected = _expected(lines)
    rules = _rules_file(tmp_path)
    envs = [{**env, "BECKON_DATA_DIR": str(tmp_path / f"worker-{n}")} for n in (1, 2)]
    with (tmp_path / "worker.log").open("wb") as log:
        workers = [start_worker(e, rules, log) for e in envs]
        try:
            time.sleep(10)  # both join; the second's arrival rebalances the partitions
            with Publisher(settings) as pub:
                _publish_lines(pub, lines)
            records = _read_until(settings, expected)
        finally:
            stop_workers(*workers)

    got = _identities(records)
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert set(got) == expected, log_text[-3000:]
    assert len(got) == len(set(got)), "copies on the topic without any crash"
    assert log_text.count("Ready") >= 2, "both workers should have run"


def test_a_worker_joining_during_a_backlog_gives_the_backtests_invitations(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    # The benchmark's two workers: the first is part-way through a backlog when the
    # second joins. Partitions change hands with records fetched, paused for the tables'
    # recovery, or handled and not yet committed, and one visitor has more events than
    # a journey remembers ids of.
    settings, env = live
    lines = list(generate(40_000, 4_000, seed=7))  # some seconds of work for one worker
    per_visitor = Counter(orjson.loads(line)["visitor_id"] for line in lines)
    assert max(per_visitor.values()) > MAX_SEEN_IDS
    expected = _expected(lines)
    rules = _rules_file(tmp_path)
    envs = [{**env, "BECKON_DATA_DIR": str(tmp_path / f"worker-{n}")} for n in (1, 2)]
    with Publisher(settings) as pub:
        _publish_lines(pub, lines)
    with (tmp_path / "worker.log").open("wb") as log:
        workers = [start_worker(envs[0], rules, log)]
        try:
            _wait_for_line(tmp_path / "worker.log", "[^Worker]: Ready", timeout_s=60)
            workers.append(start_worker(envs[1], rules, log))
            records = _read_until(settings, expected)
        finally:
            stop_workers(*workers)

    got = _identities(records)
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert set(got) == expected, log_text[-3000:]
    assert len(got) == len(set(got)), "copies on the topic without any crash"
    assert log_text.count("Executing _on_partitions_assigned") >= 3, "no rebalance"


def _wait_for_line(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in {path} after {timeout_s} s"
        time.sleep(0.1)


def _committed(settings: Settings, partition: int) -> int | None:
    """The worker group's committed offset on a clickstream partition, if any yet."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError

    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
    except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
        return None  # the group's coordinator is not there yet
    finally:
        admin.close()
    meta = offsets.get(TopicPartition(settings.topic_clickstream, partition))
    return None if meta is None else meta.offset


def _wait_all_committed(settings: Settings, total: int, timeout_s: float) -> None:
    partitions = range(settings.partitions)
    deadline = time.monotonic() + timeout_s
    while sum(_committed(settings, p) or 0 for p in partitions) < total:
        assert time.monotonic() < deadline, f"{total} events not committed in {timeout_s} s"
        time.sleep(0.5)


def _wait_committed(settings: Settings, partition: int, offset: int, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while (got := _committed(settings, partition)) != offset and time.monotonic() < deadline:
        time.sleep(0.5)
    return got


def test_transaction_markers_on_the_clickstream_do_not_stall_its_commits(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """Two transactional producers' commit markers side by side leave a gap of two offsets
    that no fetch returns; the worker must commit past it (or lag for ever)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from streams.worker.tables import partition_of

    settings, env = live
    topic, visitor = settings.topic_clickstream, "v-tx"
    partition = partition_of(visitor.encode(), settings.partitions)

    def event(n: int) -> bytes:
        return orjson.dumps({"event_id": f"tx-{n}", "type": "page_view", "visitor_id": visitor,
                             "site_id": "shop", "ts": int(time.time() * 1000) + n,
                             "url": "https://shop.example/pricing"})  # fmt: skip

    async def two_transactions() -> None:
        a, b = (AIOKafkaProducer(**settings.aiokafka_config(), transactional_id=f"{topic}-{n}")
                for n in "ab")  # fmt: skip
        await a.start()
        await b.start()
        try:
            await a.begin_transaction()
            await a.send_and_wait(topic, event(0), key=visitor.encode())  # offset 0
            await b.begin_transaction()
            await b.send_and_wait(topic, event(1), key=visitor.encode())  # offset 1
            await a.commit_transaction()  # marker at 2
            await b.commit_transaction()  # marker at 3
        finally:
            await a.stop()
            await b.stop()

    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, _rules_file(tmp_path), log)
        try:
            asyncio.run(two_transactions())
            after_transactions = _wait_committed(settings, partition, 2, timeout_s=90)
            with Publisher(settings) as pub:
                pub.publish_raw(visitor.encode(), event(2))  # offset 4, in a fetch of its own
            final = _wait_committed(settings, partition, 5, timeout_s=30)
        finally:
            stop_workers(worker)
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert after_transactions == 2, log_text[-3000:]
    assert final == 5, log_text[-3000:]
