"""The shipped clients against a real broker: publisher → Kafka → consumers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from schemas.errors import InvalidEvent
from streams.kafka.consumer import InvitationConsumer
from streams.kafka.publisher import Publisher
from streams.settings import Settings

pytestmark = pytest.mark.integration

T0 = 1_764_579_600_000  # 2025-12-01T09:00:00Z


def _event(visitor: int, seq: int) -> dict[str, object]:
    return {
        "event_id": f"v{visitor}-{seq}",
        "type": "page_ping" if seq % 3 else "page_view",
        "visitor_id": f"visitor-{visitor}",
        "site_id": "shop",
        "ts": T0 + seq * 1000,
        "url": f"https://shop.example/products/{seq % 17}",
    }


def _consume_all(settings: Settings, topic: str, expected: int, group: str) -> list:
    consumer = KafkaConsumer(
        topic,
        **settings.kafka_python_config(),
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def test_ten_thousand_events_round_trip_keyed_by_visitor_in_order(
    kafka_settings: Settings, new_topic: Callable[..., str], unique_group: str
) -> None:
    topic = new_topic("clickstream", partitions=8)
    events = [_event(v, seq) for seq in range(20) for v in range(500)]  # interleaved visitors
    with Publisher(kafka_settings, topic=topic) as pub:
        assert pub.publish_many(events) == 10_000

    records = _consume_all(kafka_settings, topic, 10_000, unique_group)

    assert len(records) == 10_000
    partitions: dict[str, set[int]] = defaultdict(set)
    seqs: dict[str, list[int]] = defaultdict(list)
    for record in records:
        value = orjson.loads(record.value)
        assert record.key == value["visitor_id"].encode()
        partitions[value["visitor_id"]].add(record.partition)
        seqs[value["visitor_id"]].append(int(value["event_id"].rsplit("-", 1)[1]))
    assert len(seqs) == 500
    assert all(len(p) == 1 for p in partitions.values()), "a visitor spans partitions"
    assert len({p for ps in partitions.values() for p in ps}) == 8
    assert all(s == list(range(20)) for s in seqs.values()), "per-visitor order was lost"


def test_publisher_refuses_an_invalid_event_naming_the_field(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    bad = {**_event(1, 0), "type": "scroll", "scroll_pct": 140}
    with Publisher(kafka_settings, topic=topic) as pub, pytest.raises(InvalidEvent) as err:
        pub.publish(bad)
    assert err.value.field == "scroll_pct"
    assert pub.sent == 0


def _invitation(n: int) -> dict[str, object]:
    return {
        "invitation_id": f"inv-{n}",
        "visitor_id": f"visitor-{n}",
        "session_id": "s1",
        "site_id": "shop",
        "rule_id": "pricing-hesitation",
        "queue": "sales",
        "priority": 10,
        "message": "Any questions about our plans?",
        "locale": None,
        "url": "https://shop.example/pricing",
        "triggered_at": "2026-12-01T09:00:30.000Z",
        "expires_at": "2026-12-01T09:01:30.000Z",
        "context": {"dwell_seconds": 30},
    }


def test_invitation_consumer_drops_a_repeated_invitation_and_skips_garbage(
    kafka_settings: Settings, new_topic: Callable[..., str], unique_group: str
) -> None:
    topic = new_topic("invitations", partitions=1)
    producer = KafkaProducer(**kafka_settings.kafka_python_config(), acks="all")
    for value in (
        orjson.dumps(_invitation(1)),
        orjson.dumps(_invitation(2)),
        b"not json at all",
        orjson.dumps(_invitation(1)),  # the copy a crashed worker writes again
        orjson.dumps({**_invitation(3), "triggered_at": "yesterday"}),
        orjson.dumps(_invitation(3)),
    ):
        producer.send(topic, key=b"k", value=value)
    producer.flush()
    producer.close()

    with InvitationConsumer(
        kafka_settings, group_id=unique_group, topic=topic, from_beginning=True
    ) as consumer:
        received = []
        for _ in range(30):
            received += consumer.poll(timeout_ms=500)
            if consumer.copies_dropped + consumer.invalid + len(received) >= 6:
                break

    assert [inv.invitation_id for inv in received] == ["inv-1", "inv-2", "inv-3"]
    assert received[0].rule_id == "pricing-hesitation"
    assert consumer.copies_dropped == 1
    assert consumer.invalid == 2
