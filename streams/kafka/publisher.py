"""Publishing clickstream events to Kafka from server-side code.

    from streams.kafka.publisher import Publisher
    from streams.settings import load_settings

    with Publisher(load_settings()) as pub:
        pub.publish({"event_id": "e1", "type": "page_view", "visitor_id": "v1",
                     "site_id": "shop", "ts": 1764579600000, "url": "https://shop.example/"})
    # leaving the block flushes: every event is acknowledged by all in-sync replicas

Events are validated before they leave (an :class:`~schemas.errors.InvalidEvent` names the
field), keyed by ``visitor_id`` so one visitor's events stay in order on one partition,
and batched by the producer (``linger_ms``). Delivery failures surface at ``flush()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from schemas.errors import BrokerError
from schemas.events import ClickEvent, event_to_json, parse_event
from streams.settings import Settings


class Publisher:
    """A batched, idempotent, acks=all producer of ClickEvents, keyed by visitor."""

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str | None = None,
        validate: bool = True,
        linger_ms: int = 10,
        batch_size: int = 256 * 1024,
    ) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.topic = topic or settings.topic_clickstream
        self.validate = validate
        self.sent = 0
        self._failures: list[BaseException] = []
        try:
            self._producer = KafkaProducer(
                **settings.kafka_python_config(),
                acks="all",
                enable_idempotence=True,
                linger_ms=linger_ms,
                batch_size=batch_size,
                max_in_flight_requests_per_connection=5,
                client_id="beckon-publisher",
            )
        except (KafkaError, OSError) as exc:
            raise BrokerError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc

    def publish(self, event: ClickEvent | Mapping[str, Any]) -> None:
        """Queue one event for sending; raises InvalidEvent if it is not a valid event."""
        if isinstance(event, Mapping):
            raw = orjson.dumps(event)
            visitor_id = parse_event(raw).visitor_id if self.validate else event["visitor_id"]
        else:
            raw = event_to_json(event)
            visitor_id = event.visitor_id
        self.publish_raw(visitor_id.encode(), raw)

    def publish_many(self, events: Iterable[ClickEvent | Mapping[str, Any]]) -> int:
        """Queue several events; returns how many were queued."""
        count = 0
        for event in events:
            self.publish(event)
            count += 1
        return count

    def publish_raw(self, key: bytes | None, value: bytes) -> None:
        """Queue bytes as they are (no validation): for replaying recorded messages.

        Without a key the producer picks the partition: only for lines with no visitor.
        """
        future = self._producer.send(self.topic, key=key, value=value)
        future.add_errback(self._failures.append)
        self.sent += 1

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued event is acknowledged; raise if any was not."""
        self._producer.flush(timeout=timeout)
        if self._failures:
            first, count = self._failures[0], len(self._failures)
            self._failures.clear()
            raise BrokerError(f"{count} event(s) were not acknowledged by Kafka: {first}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
