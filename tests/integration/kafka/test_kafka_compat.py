"""The Kafka version we pin works with faust-streaming's client (aiokafka): groups and
transactions on a single node, read_committed hiding what was aborted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.settings import Settings

pytestmark = pytest.mark.integration


async def _transactions(settings: Settings, topic: str, group: str) -> list[bytes]:
    producer = AIOKafkaProducer(**settings.aiokafka_config(), transactional_id=f"tx-{topic}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1", key=b"a")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted", key=b"a")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2", key=b"a")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        **settings.aiokafka_config(),
        group_id=group,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    seen: list[bytes] = []
    try:
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            seen += [r.value for records in batch.values() for r in records if r.value]
            if len(seen) >= 2:
                break
    finally:
        await consumer.stop()
    return seen


def test_aiokafka_transactions_commit_and_abort_on_a_single_node(
    kafka_settings: Settings, new_topic: Callable[..., str], unique_group: str
) -> None:
    topic = new_topic("tx", partitions=1)
    seen = asyncio.run(_transactions(kafka_settings, topic, unique_group))
    assert seen == [b"committed-1", b"committed-2"]
