"""`beckon replay` against a real broker: every line arrives, keyed by visitor, in order."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.ops.replay import replay
from streams.settings import Settings

pytestmark = pytest.mark.integration

T0 = 1_764_579_600_000  # 2025-12-01T09:00:00Z


def _event(visitor: int, seq: int, ts: Any = None) -> dict[str, Any]:
    return {
        "event_id": f"v{visitor}-{seq}",
        "type": "page_view" if seq % 5 == 0 else "page_ping",
        "visitor_id": f"visitor-{visitor}",
        "site_id": "shop",
        "ts": T0 + seq * 1000 if ts is None else ts,
        "url": "https://shop.example/pricing",
    }


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _records(settings: Settings, topic: str) -> list[Any]:
    """Every record on the topic, partition by partition."""
    consumer = KafkaConsumer(**settings.kafka_python_config(), group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
        return records
    finally:
        consumer.close()


def test_two_thousand_events_arrive_keyed_by_visitor_in_file_order(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("clickstream", partitions=4)
    events = [_event(v, seq) for seq in range(40) for v in range(50)]  # visitors interleaved
    path = _write(tmp_path / "events.jsonl", [orjson.dumps(e) for e in events])

    stats = replay(kafka_settings, path, topic=topic, progress=False)

    assert (stats.sent, stats.unkeyed) == (2000, 0)
    records = _records(kafka_settings, topic)
    assert len(records) == 2000
    seqs: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        value = orjson.loads(record.value)
        assert record.key == value["visitor_id"].encode()
        seqs[value["visitor_id"]].append(int(value["event_id"].rsplit("-", 1)[1]))
        partitions[value["visitor_id"]].add(record.partition)
    assert len(seqs) == 50
    assert all(s == list(range(40)) for s in seqs.values()), "per-visitor order was lost"
    assert all(len(p) == 1 for p in partitions.values())


def test_poison_lines_are_sent_as_they_are_without_a_key(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("clickstream", partitions=2)
    lines = [
        orjson.dumps(_event(1, 0)),
        b"this is not JSON {",
        b"",  # blank lines are skipped, not sent
        orjson.dumps({"visitor_id": 42, "type": "page_view"}),  # not a string: no key
        orjson.dumps(_event(1, 1)),
    ]
    path = _write(tmp_path / "events.jsonl", lines)

    stats = replay(kafka_settings, path, topic=topic, progress=False)

    assert (stats.sent, stats.unkeyed) == (4, 2)
    got = {record.value: record.key for record in _records(kafka_settings, topic)}
    assert got[b"this is not JSON {"] is None
    assert got[lines[3]] is None
    assert got[lines[0]] == got[lines[4]] == b"visitor-1"


def test_rate_paces_events_by_their_own_time(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("clickstream", partitions=1)
    # 2 s of recorded time, RFC 3339 and epoch ms mixed, plus one line without a ts.
    lines = [
        orjson.dumps(_event(1, 0, ts="2025-12-01T09:00:00Z")),
        orjson.dumps(_event(1, 1, ts=T0 + 500)),
        b"no ts here",
        orjson.dumps(_event(1, 2, ts="2025-12-01T18:00:01+09:00")),
        orjson.dumps(_event(1, 3, ts=T0 + 2000)),
    ]
    path = _write(tmp_path / "events.jsonl", lines)

    stats = replay(kafka_settings, path, rate=4, topic=topic, progress=False)

    assert stats.sent == 5
    assert stats.elapsed_s >= 0.45  # 2 s at 4x; a lower bound only, machines are slow


def test_cli_replay_prints_the_count_and_rate(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("clickstream", partitions=2)
    path = _write(
        tmp_path / "events.jsonl", [orjson.dumps(_event(v, s)) for s in range(3) for v in range(4)]
    )
    env = {
        **os.environ,
        "BECKON_BOOTSTRAP": kafka_settings.bootstrap,
        "BECKON_TOPIC_CLICKSTREAM": topic,
    }

    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", str(path), "--rate", "1000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"sent 12 events to {topic}" in done.stdout
    assert "events/s" in done.stdout
    assert len(_records(kafka_settings, topic)) == 12


def test_cli_replay_of_a_missing_file_names_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "nope.jsonl" in done.stderr
