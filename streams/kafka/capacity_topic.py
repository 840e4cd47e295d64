"""The capacity topic: the chat queues' capacity, read whole and then followed.

``beckon.capacity`` is compacted and keyed by queue; each value is a Capacity record
(``schemas.capacity``). A worker judges rules with a capacity clause against a
``CapacityView`` (``streams.core.capacity``) of the records read so far:

    read_capacity()     the whole topic up to its end offsets at call time, in a view
    CapacityInForce     that view, then kept current by ``follow`` (every partition,
                        no consumer group, from where the first read stopped)
    publish_capacity()  one record, keyed by its queue (the delivery service's, tests')
    recent_records()    the raw records since an instant, the newest at most (the
                        console's preview folds them into a view that keeps them all)

A record that does not validate, or whose key is not its queue, is logged, counted in
``CapacityView.refused`` and skipped; it never stops the worker.
"""

from __future__ import annotations

import logging
from typing import Any

from schemas.capacity import Capacity, capacity_to_json
from streams.core.capacity import CapacityView, history_ms
from streams.kafka.consumer import follow_topic
from streams.kafka.rules_topic import _read_all
from streams.settings import Settings

log = logging.getLogger(__name__)


def capacity_view(settings: Settings) -> CapacityView:
    """An empty view that keeps the history a live worker's decisions look up."""
    limits = settings.limits()
    return CapacityView(history_ms(limits.capacity_delay_ms, limits.capacity_max_age_ms))


def fold(view: CapacityView, record: Any) -> None:
    """Apply one consumed capacity record; a refusal is logged with its offset."""
    reason = view.fold(record.key, record.value)
    if reason is not None:
        log.warning("%s[%d]@%d skipped: %s", record.topic, record.partition,
                    record.offset, reason)  # fmt: skip


class CapacityInForce:
    """The capacity view a worker decides with: the whole topic first (so no event is
    judged before the capacity recorded so far is known), then every record as it comes.
    The view is updated in place; the engine reads it at each decision."""

    def __init__(self, settings: Settings, view: CapacityView, positions: dict[int, int]) -> None:
        self.settings, self.view, self.positions = settings, view, positions

    @classmethod
    def read(cls, settings: Settings, timeout_s: float = 30) -> CapacityInForce:
        """Read the topic from its beginning to its end offsets at call time."""
        view, positions = capacity_view(settings), {}
        for record in _read_all(settings, settings.topic_capacity, timeout_s):
            fold(view, record)
            positions[record.partition] = record.offset + 1
        log.info("capacity from %s: %r", settings.topic_capacity, view)
        return cls(settings, view, positions)

    def __call__(self) -> CapacityView:
        return self.view

    async def follow(self, poll_s: float = 0.5) -> None:
        """Fold every capacity record as it arrives, until cancelled."""

        def fold_all(records: list[Any]) -> None:
            for record in records:
                fold(self.view, record)

        # A partition with nothing read yet starts at its beginning (copies would change
        # nothing anyway).
        await follow_topic(
            self.settings,
            self.settings.topic_capacity,
            fold_all,
            client_id="beckon-capacity-follower",
            positions=self.positions,
            poll_s=poll_s,
        )


def read_capacity(settings: Settings, timeout_s: float = 30) -> CapacityView:
    """The whole capacity topic, as a worker reads it when it starts."""
    return CapacityInForce.read(settings, timeout_s).view


def recent_records(
    settings: Settings, since_ms: int, most: int, timeout_s: float = 30
) -> list[Any]:
    """The capacity topic's records timestamped at or after ``since_ms`` (epoch ms), at
    most the newest ``most`` of each partition, up to the end offsets at call time: key,
    value, offset and all, unparsed (``CapacityView.fold`` takes them)."""
    return _read_all(settings, settings.topic_capacity, timeout_s, since_ms=since_ms, most=most)


def publish_capacity(producer: Any, topic: str, record: Capacity) -> Any:
    """Send one record with a kafka-python producer, keyed by its queue; returns the future."""
    return producer.send(topic, key=record.queue.encode(), value=capacity_to_json(record))
