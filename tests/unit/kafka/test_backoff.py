"""While Kafka is away, aiokafka's clients wait between failed metadata updates.

No broker here on purpose: the behaviour under test is the client's when nothing answers
(a free port refuses every connection at once)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.client import AIOKafkaClient

from streams.kafka import backoff
from tests.helpers import free_port


def test_the_wait_doubles_from_the_clients_backoff_up_to_a_second() -> None:
    assert [backoff.backoff_s(0.1, n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.backoff_s(0.1, 10_000) == 1.0


def test_a_consumer_of_an_absent_broker_tries_a_few_times_a_second_not_hundreds() -> None:
    backoff.install()
    backoff.install()  # idempotent: one wait, not two

    async def count_tries(seconds: float) -> tuple[int, int]:
        client = AIOKafkaClient(bootstrap_servers=f"localhost:{free_port()}", retry_backoff_ms=100)
        tries = 0
        update = client._metadata_update

        async def counted(*args: object) -> bool:
            nonlocal tries
            tries += 1
            return bool(await update(*args))

        client._metadata_update = counted
        # Started by hand, as after a broker went away: metadata is known, nothing answers.
        client._md_update_waiter = asyncio.get_running_loop().create_future()
        synchronizer = asyncio.create_task(client._md_synchronizer())
        fetcher_asks = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # as aiokafka's fetcher and producer do
            fetcher_asks += 1
            await asyncio.wait_for(client.force_metadata_update(), 5)
        synchronizer.cancel()
        await client.close()
        return tries, fetcher_asks

    tries, asks = asyncio.run(count_tries(2.0))
    # Waits of 0.1, 0.2, 0.4, 0.8 s, then 1 s: 5 tries in 2 s (without it: 36,676 in one run).
    assert 3 <= tries <= 7, tries
    assert asks == tries
