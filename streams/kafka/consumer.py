"""The invitation consumer that chat delivery services use.

    from streams.kafka.consumer import InvitationConsumer
    from streams.settings import load_settings

    with InvitationConsumer(load_settings(), group_id="chat-delivery") as invitations:
        for invitation in invitations:        # validated schemas.Invitation values
            show_in_widget(invitation)

Beckon may write an invitation twice after a worker crash; the copy carries the same
``invitation_id``. This consumer drops such copies, remembering the most recent
``max_remembered`` ids (a copy arrives within seconds of its original, so a window of
100,000 ids, about 10 MB, is ample). Messages that are not valid invitations are logged,
counted in ``invalid`` and skipped: they never stop delivery.

``follow_topic`` is the worker's other consumer: every partition of a small topic (the
rules, the capacity), no consumer group, each record handed on as it comes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cachetools import LRUCache

from schemas.errors import BrokerError, InvalidInput
from schemas.invitations import Invitation, parse_invitation
from streams.kafka import backoff
from streams.settings import Settings

log = logging.getLogger(__name__)


class SeenIds:
    """A set of the last ``capacity`` ids seen: the least recently seen is forgotten first.

    A copy counts as a sighting, so an id that keeps coming back stays remembered."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._ids: LRUCache[str, None] = LRUCache(maxsize=capacity)

    def add(self, item: str) -> bool:
        """Remember ``item``; False if it was already remembered (a copy)."""
        known = item in self._ids
        self._ids[item] = None  # a new id, or a copy: now the most recently seen
        return not known

    def __len__(self) -> int:
        return len(self._ids)


class InvitationConsumer:
    """Validated invitations from the invitations topic, copies dropped."""

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        topic: str | None = None,
        from_beginning: bool = False,
        max_remembered: int = 100_000,
        **consumer_options: Any,
    ) -> None:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        self.topic = topic or settings.topic_invitations
        self.seen = SeenIds(max_remembered)
        self.copies_dropped = 0
        self.invalid = 0
        self._stopped = False
        try:
            self._consumer = KafkaConsumer(
                self.topic,
                **settings.kafka_python_config(),
                group_id=group_id,
                client_id=f"beckon-invitations-{group_id}",
                auto_offset_reset="earliest" if from_beginning else "latest",
                # The worker may write in Kafka transactions: never show an aborted one.
                isolation_level="read_committed",
                enable_auto_commit=True,
                **consumer_options,
            )
        except (KafkaError, OSError) as exc:
            raise BrokerError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc

    def poll(self, timeout_ms: int = 1000) -> list[Invitation]:
        """The invitations that arrived within ``timeout_ms``, in partition order."""
        batches = self._consumer.poll(timeout_ms=timeout_ms)
        out: list[Invitation] = []
        for records in batches.values():
            for record in records:
                invitation = self._accept(record.value, record.partition, record.offset)
                if invitation is not None:
                    out.append(invitation)
        return out

    def _accept(self, value: bytes | None, partition: int, offset: int) -> Invitation | None:
        try:
            invitation = parse_invitation(value or b"")
        except InvalidInput as exc:
            self.invalid += 1
            log.warning("skipped invalid invitation at %s[%d]@%d: %s",
                        self.topic, partition, offset, exc)  # fmt: skip
            return None
        if not self.seen.add(invitation.invitation_id):
            self.copies_dropped += 1
            log.info("dropped a copy of invitation %s", invitation.invitation_id)
            return None
        return invitation

    def __iter__(self) -> Iterator[Invitation]:
        while not self._stopped:
            yield from self.poll()

    def stop(self) -> None:
        """Make iteration end after the current batch."""
        self._stopped = True

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> InvitationConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def follow_topic(
    settings: Settings,
    topic: str,
    on_records: Callable[[list[Any]], None],
    *,
    client_id: str,
    positions: Mapping[int, int] | None = None,
    poll_s: float = 0.5,
    **consumer_options: Any,
) -> None:
    """Hand each poll's records of every partition of ``topic`` to ``on_records`` (an
    empty list when a poll brought none), until cancelled.

    No consumer group: every worker reads the whole topic. A partition is read from its
    offset in ``positions`` (where an earlier read stopped), or else from its beginning.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    backoff.install()
    consumer = AIOKafkaConsumer(
        **settings.aiokafka_config(),
        group_id=None,
        enable_auto_commit=False,
        client_id=client_id,
        **consumer_options,
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        positions = positions or {}
        for tp in tps:
            if tp.partition in positions:
                consumer.seek(tp, positions[tp.partition])
        unread = [tp for tp in tps if tp.partition not in positions]
        if unread:
            await consumer.seek_to_beginning(*unread)
        while True:
            batches = await consumer.getmany(timeout_ms=int(poll_s * 1000))
            on_records([record for records in batches.values() for record in records])
    finally:
        await consumer.stop()
