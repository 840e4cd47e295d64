"""The worker's intake: whole fetches from Faust's consumer, not one event at a time.

Faust hands each record to an agent through its fetcher, conductor, a channel queue, a
stream and an acknowledgement: 150–240 µs an event on our machines, more than all of
Beckon's own work on it (docs/performance.md). The intake takes the records of its
topics (the clickstream, the dwell updates) out of each fetch before Faust makes
messages of them and gathers them; a task of its own hands what was gathered to each
topic's handler in batches, while Faust goes on fetching. Every other topic (the
tables' changelogs during recovery) goes on through Faust as before.

What stays Faust's: the consumer, its group and assignment (the topic is subscribed
through Faust's conductor, so the tables stay co-partitioned with it), the tables and
their recovery, flow control during rebalances, and offset commits. Once a batch is
handled the intake marks its offsets acknowledged, as ``Consumer.ack`` would for each
message, and Faust's commit timer commits them. A revocation forgets what was gathered
(the rebalance gives every partition a fresh position, from its committed offset) and
waits for the batch in hand, as Faust waits for its agents' events in flight. Records
dropped from a fetch within a generation (the flow stopped or the partition paused
since the fetch began) are fetched again: the intake seeks their partition back.

Under ``exactly_once`` the worker keeps a Faust agent instead: Faust's transactions
follow the event an agent is processing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Protocol, cast

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP

from streams.worker.faust_adapter import acknowledge, fetch_hook

log = logging.getLogger(__name__)


class Record(Protocol):
    """What the pipeline reads of a record: aiokafka's ``ConsumerRecord``, or Faust's
    ``Message`` on the agent path."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


Handler = Callable[[Sequence[Record]], Awaitable[None]]
FETCH_PAUSE_S = 0.05


class Intake:
    """Gathers the records of its topics from each fetch and hands them to the topics'
    handlers, up to ``batch_max`` records a batch.

    Gathering and handling overlap: while a batch is handled, Faust's fetcher goes on
    fetching, so the next batch is what arrived meanwhile, not what a fetch after the
    batch brings back (about 200 ms later at 2,000 events/s). It waits while a full
    batch is already gathered."""

    def __init__(self, app: faust.App, *, batch_max: int) -> None:
        self.app, self.batch_max = app, batch_max
        self.handlers: dict[str, Handler] = {}
        self._pending: dict[Any, list[Any]] = {}  # TopicPartition -> records not handled
        self._pending_n = 0
        self._fetched, self._room = asyncio.Event(), asyncio.Event()
        self._room.set()
        self._consumer: FaustConsumer | None = None
        self._generation = -1  # the consumer group generation the records were fetched in
        self._in_hand: asyncio.Future[None] | None = None
        fetch_hook(app, self.take)
        app.on_partitions_revoked.connect(cast(Any, self._on_revoked))

    def add(self, topic: faust.TopicT, handle: Handler) -> None:
        """Read ``topic`` here: subscribed and assigned through Faust, handled by ``handle``."""
        self.app.topics.add(topic)
        self.handlers[topic.get_topic_name()] = handle

    async def take(self, consumer: FaustConsumer, records: Any, active: Any) -> None:
        """Move the intake's topics' records from a fetch, just returned, to the gathered
        ones.

        The fetch belongs to the group generation current as it returns, as in Faust's
        ``getmany``, not to the one current when the fetcher began to wait: that wait
        can span a whole rebalance, and a fetch after it reads from the positions
        Faust sought to. Dropping such a fetch would skip its records for good.
        """
        mine = {tp: records.pop(tp) for tp in [tp for tp in records if tp.topic in self.handlers]}
        if not mine:
            return
        if not consumer.flow_active:
            # A rebalance began after the fetch: these records come again once it is over.
            await self._seek_back(consumer, mine)
            return
        generation = consumer.app.consumer_generation_id
        if self._pending and generation != self._generation:
            # Gathered before a rebalance that is over now: the partitions may be
            # another worker's, and every partition has a fresh position.
            self._drop()
        self._consumer, self._generation = consumer, generation
        paused: dict[Any, list[Any]] = {}
        for tp, batch in mine.items():
            if active is None or tp in active:
                self._pending.setdefault(tp, []).extend(batch)
                self._pending_n += len(batch)
            else:  # paused since the fetch began (a table's recovery)
                paused[tp] = batch
        if paused:
            await self._seek_back(consumer, paused)
        if self._pending_n:
            self._fetched.set()
        while self._pending_n >= self.batch_max:  # a full batch waits already
            self._room.clear()
            await self._room.wait()
        in_hand = self._in_hand
        if in_hand is not None and not in_hand.done():
            # Fetch again when the batch in hand is done, or in FETCH_PAUSE_S at most:
            # fetching as fast as records come costs a thread hop and a decode per
            # handful of records, a third of a core at 2,000 events/s.
            await asyncio.wait([in_hand], timeout=FETCH_PAUSE_S)

    async def run(self) -> None:
        """Handle the gathered records, a batch at a time, until cancelled (a Faust task)."""
        while True:
            await self._fetched.wait()
            await self.handle_next()

    async def handle_next(self) -> None:
        """Handle up to ``batch_max`` gathered records; none while a rebalance runs."""
        consumer = self._consumer
        if (
            consumer is None
            or not consumer.flow_active
            or consumer.app.consumer_generation_id != self._generation
        ):
            self._drop()  # gathered before a rebalance
            return
        batch = self._next_batch()
        # Handled to the end even when Faust cancels its tasks meanwhile (a stop): a
        # batch stopped half-way would be replayed, but needlessly.
        self._in_hand = asyncio.ensure_future(self._handle(consumer, batch))
        await asyncio.shield(self._in_hand)

    def _next_batch(self) -> dict[Any, list[Any]]:
        """Up to ``batch_max`` gathered records, a partition's oldest first; a partition cut
        short goes to the back of the queue."""
        batch: dict[Any, list[Any]] = {}
        room = self.batch_max
        for tp in list(self._pending):
            if room == 0:
                break
            records = self._pending.pop(tp)
            if len(records) > room:
                self._pending[tp] = records[room:]
                records = records[:room]
            batch[tp] = records
            room -= len(records)
        self._pending_n -= self.batch_max - room
        if not self._pending:
            self._fetched.clear()
        if self._pending_n < self.batch_max:
            self._room.set()
        return batch

    @staticmethod
    async def _seek_back(consumer: FaustConsumer, dropped: Mapping[Any, list[Any]]) -> None:
        """Move each partition's position back to its first dropped record, as if the
        fetch had not happened.

        Faust seeks to the committed offsets once a rebalance is over, but aiokafka's
        ``seek_to_committed`` leaves a partition with no committed offset where it is:
        past the dropped records, which would never come again. (Records dropped in an
        earlier generation need no seek: a rebalance gives every partition a fresh
        position, from its committed offset or the start.)"""
        assigned = consumer.assignment()
        for tp, batch in dropped.items():
            if tp in assigned:
                with suppress(IllegalStateError):  # revoked meanwhile: it starts afresh
                    await consumer.seek(TP(tp.topic, tp.partition), batch[0].offset)

    def _drop(self) -> None:
        """Forget the gathered records: after the rebalance every partition reads on from
        its committed offset, and they come again."""
        self._pending.clear()
        self._pending_n = 0
        self._fetched.clear()
        self._room.set()

    async def _handle(self, consumer: FaustConsumer, mine: Mapping[Any, list[Any]]) -> None:
        by_topic: dict[str, dict[Any, list[Any]]] = {}
        for tp, batch in mine.items():
            by_topic.setdefault(tp.topic, {})[tp] = batch
        for topic, fetched in by_topic.items():
            if len(fetched) == 1:
                [batch] = fetched.values()
            else:
                batch = [record for records in fetched.values() for record in records]
            await self.handlers[topic](batch)
            self._acknowledge(consumer, fetched)

    @staticmethod
    def _acknowledge(consumer: FaustConsumer, mine: Mapping[Any, list[Any]]) -> None:
        """Mark the batch's offsets as handled, as ``Consumer.ack`` does one by one."""
        track_end = consumer.app.monitor.track_tp_end_offset
        for key, batch in mine.items():
            tp = TP(key.topic, key.partition)
            acknowledge(consumer, tp, batch[0].offset, batch[-1].offset)
            track_end(tp, consumer.highwater(tp))

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        self._drop()
        in_hand = self._in_hand
        if in_hand is not None and not in_hand.done():
            log.info("partitions revoked: finishing the clickstream batch in hand")
            await asyncio.wait([in_hand])
