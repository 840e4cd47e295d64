"""The console's preview reads the last hours of the clickstream back from a real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from bench.clickstream import generate
from streams.clock import now_ms
from streams.console.preview import PreviewCancelled, read_recent
from streams.settings import Settings

pytestmark = pytest.mark.integration

HOUR = 3_600_000


def produce(settings: Settings, records: list[tuple[int, int, bytes | None]]) -> None:
    """(partition, record timestamp, value) each, keyed by nothing; acknowledged on return."""
    producer = KafkaProducer(**settings.kafka_python_config(), acks="all")
    try:
        for partition, ts, value in records:
            producer.send(
                settings.topic_clickstream, value=value, key=b"k", partition=partition,
                timestamp_ms=ts,
            )  # fmt: skip
        producer.flush()
    finally:
        producer.close()


@pytest.fixture
def recorded(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> tuple[Settings, int, list[bytes], list[bytes]]:
    """A clickstream of 2 partitions: 6 records 3 hours old, then 20 recent ones, 10 per
    partition, oldest first, and a tombstone among them."""
    settings = kafka_settings.model_copy(update={"topic_clickstream": new_topic("recent", 2)})
    now = now_ms()
    values = list(generate(26, 5, seed=11))
    old, recent = values[:6], values[6:]
    records: list[tuple[int, int, bytes | None]] = [
        (i % 2, now - 3 * HOUR + i, value) for i, value in enumerate(old)
    ]
    records += [(i % 2, now - HOUR // 2 + i * 1000, value) for i, value in enumerate(recent)]
    records.append((0, now - HOUR // 4, None))
    produce(settings, records)
    return settings, now, old, recent


def test_read_recent_gives_the_last_hours_without_tombstones(
    recorded: tuple[Settings, int, list[bytes], list[bytes]],
) -> None:
    settings, now, _, recent = recorded
    seen: list[tuple[int, int]] = []

    got = read_recent(settings, 1, 1000, now=now, progress=lambda d, t: seen.append((d, t)))

    assert sorted(got) == sorted(recent)
    assert seen[-1][0] == seen[-1][1]


def test_read_recent_keeps_the_newest_of_each_partition_when_over_the_most(
    recorded: tuple[Settings, int, list[bytes], list[bytes]],
) -> None:
    settings, now, _, recent = recorded
    # Offsets in the span: 10 on partition 1, 11 on partition 0 (the tombstone counts).
    got = read_recent(settings, 1, 7, now=now)

    newest_1 = recent[1::2][-3:]  # 7 * 10 // 21 = 3 offsets
    newest_0 = recent[0::2][-2:]  # 7 * 11 // 21 = 3 offsets, the last is the tombstone
    assert sorted(got) == sorted(newest_0 + newest_1)


def test_read_recent_reaches_back_as_far_as_asked(
    recorded: tuple[Settings, int, list[bytes], list[bytes]],
) -> None:
    settings, now, old, recent = recorded
    assert sorted(read_recent(settings, 4, 1000, now=now)) == sorted(old + recent)


def test_read_recent_stops_when_cancelled(
    recorded: tuple[Settings, int, list[bytes], list[bytes]],
) -> None:
    settings, now, _, _ = recorded
    with pytest.raises(PreviewCancelled):
        read_recent(settings, 1, 1000, now=now, cancelled=lambda: True)
