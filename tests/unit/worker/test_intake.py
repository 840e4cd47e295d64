"""The intake: a fetch's records of its topics are gathered and go to their handlers in
batches, the rest to Faust, and handled offsets become the offsets Faust commits (its own
``_new_offset``).

The real consumer, group and commits are in tests/integration/worker/test_worker_live.py."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.worker.intake import FETCH_PAUSE_S, Intake, Record


def records(topic: str, partition: int, *offsets: int) -> list[Any]:
    return [SimpleNamespace(topic=topic, partition=partition, offset=o, key=b"k", value=b"v")
            for o in offsets]  # fmt: skip


class StandInConsumer:
    """The bookkeeping of Faust's consumer that the intake and ``_new_offset`` touch."""

    def __init__(self) -> None:
        self.flow_active = True
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._gap: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._n_acked = 0
        self.assigned = {TP("clicks", p) for p in range(4)}
        self.positions: dict[TP, int] = {}  # where seeks put a partition's fetching
        self.app = SimpleNamespace(
            monitor=SimpleNamespace(track_tp_end_offset=lambda *a: None, stream_inbound_time={}),
            consumer_generation_id=0,
        )

    def highwater(self, tp: TP) -> int:
        return 100

    def assignment(self) -> set[TP]:
        return self.assigned

    async def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp] = offset

    def commit(self, tp: TP) -> int | None:
        """What Faust's commit would commit now, and note it committed."""
        offset = FaustConsumer._new_offset(self, tp)  # type: ignore[arg-type]
        if offset is not None:
            self._committed_offset[tp] = offset
        return offset


def app_of(revoke_receivers: list[Any]) -> Any:
    """What the intake uses of a Faust app: its transport, conductor and revoke signal."""
    return SimpleNamespace(
        transport=SimpleNamespace(),
        topics=SimpleNamespace(add=lambda topic: None),
        on_partitions_revoked=SimpleNamespace(connect=revoke_receivers.append),
    )


def intake_of(
    *topics: str, batch_max: int = 100
) -> tuple[Intake, dict[str, list[Sequence[Record]]]]:
    intake = Intake(app_of([]), batch_max=batch_max)
    handled: dict[str, list[Sequence[Record]]] = {t: [] for t in topics}
    for name in topics:

        async def handle(batch: Sequence[Record], name: str = name) -> None:
            handled[name].append(batch)

        intake.add(SimpleNamespace(get_topic_name=lambda name=name: name), handle)  # type: ignore[arg-type]
    return intake, handled


def fetch_and_handle(
    intake: Intake, consumer: StandInConsumer, fetch: Any, active: Any = None
) -> None:
    """One fetch reaches the intake, and everything it gathered is handled."""

    async def scenario() -> None:
        fetching = asyncio.ensure_future(intake.take(consumer, fetch, active))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        while intake._pending_n or not fetching.done():
            await (intake.handle_next() if intake._pending_n else asyncio.sleep(0))
        await fetching

    asyncio.run(scenario())


def test_a_fetch_is_split_one_batch_per_topic_and_other_topics_stay_for_faust() -> None:
    intake, handled = intake_of("clicks", "updates")
    consumer = StandInConsumer()
    changelog = TopicPartition("journeys-changelog", 0)
    fetch = {
        TopicPartition("clicks", 0): records("clicks", 0, 0, 1),
        TopicPartition("clicks", 1): records("clicks", 1, 5),
        TopicPartition("updates", 0): records("updates", 0, 9),
        changelog: records("journeys-changelog", 0, 3),
    }
    fetch_and_handle(intake, consumer, fetch)
    assert [[(r.partition, r.offset) for r in b] for b in handled["clicks"]] == [
        [(0, 0), (0, 1), (1, 5)]
    ]
    assert [[r.offset for r in b] for b in handled["updates"]] == [[9]]
    assert list(fetch) == [changelog]  # what Faust goes on with
    assert consumer._read_offset[TP("clicks", 0)] == 1


def test_records_fetched_as_a_rebalance_began_are_dropped_and_fetched_again() -> None:
    # aiokafka's seek to the committed offsets leaves a partition that has none where it
    # is: the intake puts it back on the first record it dropped.
    intake, handled = intake_of("clicks")
    consumer = StandInConsumer()
    consumer.flow_active = False
    consumer.assigned = {TP("clicks", 0), TP("clicks", 1)}
    fetch = {TopicPartition("clicks", 0): records("clicks", 0, 7, 8),
             TopicPartition("clicks", 1): records("clicks", 1, 0, 1),
             TopicPartition("clicks", 2): records("clicks", 2, 4)}  # fmt: skip
    fetch_and_handle(intake, consumer, fetch)
    assert handled["clicks"] == [] and fetch == {}
    assert consumer.commit(TP("clicks", 0)) is None
    assert consumer.positions == {TP("clicks", 0): 7, TP("clicks", 1): 0}  # 2: revoked


def test_partitions_paused_since_the_fetch_began_are_fetched_again_not_handled() -> None:
    intake, handled = intake_of("clicks")
    consumer = StandInConsumer()
    fetch = {TopicPartition("clicks", 0): records("clicks", 0, 3, 4),
             TopicPartition("clicks", 1): records("clicks", 1, 0)}  # fmt: skip
    fetch_and_handle(intake, consumer, fetch, {TP("clicks", 1)})
    assert [[r.partition for r in b] for b in handled["clicks"]] == [[1]]
    assert consumer.positions == {TP("clicks", 0): 3}


def test_handled_offsets_commit_past_gaps_between_batches() -> None:
    # Offsets 5 and 6 are two producers' transaction markers: never fetched.
    intake, _ = intake_of("clicks")
    consumer, tp = StandInConsumer(), TP("clicks", 0)
    fetch_and_handle(intake, consumer, {tp: records("clicks", 0, 0, 1, 2, 3, 4)})
    assert consumer.commit(tp) == 5
    fetch_and_handle(intake, consumer, {tp: records("clicks", 0, 7, 8, 9)})
    assert consumer.commit(tp) == 10  # Faust alone would wait for 5 and 6 for ever


def test_handled_partitions_are_noted_as_processed_for_fausts_livelock_check() -> None:
    # Faust logs "Stream has not started processing" for a partition fetched but never
    # seen by one of its streams; the intake's partitions are noted as its streams note.
    intake, _ = intake_of("clicks")
    consumer = StandInConsumer()
    fetch = {TopicPartition("clicks", 0): records("clicks", 0, 3, 4),
             TopicPartition("clicks", 1): records("clicks", 1, 0)}  # fmt: skip
    fetch_and_handle(intake, consumer, fetch, {TP("clicks", 1)})  # partition 0 paused
    assert list(consumer.app.monitor.stream_inbound_time) == [TP("clicks", 1)]


def test_a_batch_fetched_again_after_a_seek_back_commits_no_lower() -> None:
    intake, _ = intake_of("clicks")
    consumer, tp = StandInConsumer(), TP("clicks", 0)
    fetch_and_handle(intake, consumer, {tp: records("clicks", 0, 0, 1, 2, 3)})
    assert consumer.commit(tp) == 4
    fetch_and_handle(intake, consumer, {tp: records("clicks", 0, 2, 3, 4, 5)})
    assert consumer.commit(tp) == 6
    assert consumer._acked[tp] == []


def test_batches_hold_batch_max_records_and_a_partition_cut_short_goes_last() -> None:
    intake, handled = intake_of("clicks", batch_max=3)
    consumer = StandInConsumer()
    fetch = {TopicPartition("clicks", 0): records("clicks", 0, 0, 1, 2, 3),
             TopicPartition("clicks", 1): records("clicks", 1, 0, 1)}  # fmt: skip
    fetch_and_handle(intake, consumer, fetch)
    assert [[(r.partition, r.offset) for r in b] for b in handled["clicks"]] == [
        [(0, 0), (0, 1), (0, 2)],
        [(1, 0), (1, 1), (0, 3)],
    ]
    assert consumer.commit(TP("clicks", 0)) == 4 and consumer.commit(TP("clicks", 1)) == 2


def test_fetching_waits_while_a_full_batch_is_gathered_and_goes_on_as_it_is_handled() -> None:
    intake, handled = intake_of("clicks", batch_max=2)
    consumer = StandInConsumer()

    async def scenario() -> None:
        fetching = asyncio.ensure_future(
            intake.take(consumer, {TP("clicks", 0): records("clicks", 0, 0, 1, 2)}, None)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0.01)
        assert not fetching.done()  # three gathered: a full batch waits
        await intake.handle_next()
        await asyncio.sleep(0.01)
        assert fetching.done()  # one left: the fetcher goes on

    asyncio.run(scenario())
    assert [len(b) for b in handled["clicks"]] == [2]


def test_a_revocation_forgets_what_was_gathered_and_waits_for_the_batch_in_hand() -> None:
    receivers: list[Any] = []
    app = app_of(receivers)
    intake = Intake(app, batch_max=2)
    steps: list[str] = []

    async def slow(batch: Sequence[Record]) -> None:
        await asyncio.sleep(0.05)
        steps.append(f"handled {[r.offset for r in batch]}")

    intake.add(SimpleNamespace(get_topic_name=lambda: "clicks"), slow)  # type: ignore[arg-type]

    async def scenario() -> None:
        consumer = StandInConsumer()
        running = asyncio.ensure_future(intake.run())
        fetching = asyncio.ensure_future(
            intake.take(consumer, {TP("clicks", 0): records("clicks", 0, 0, 1, 2, 3)}, None)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0.01)
        fetching.cancel()  # Faust cancels its fetcher and tasks as a rebalance begins
        running.cancel()
        [on_revoked] = receivers
        await on_revoked(app, {TP("clicks", 0)})
        steps.append("revoked")
        assert intake._pending_n == 0  # offsets 2 and 3 come again after Faust's seek

    asyncio.run(scenario())
    assert steps == ["handled [0, 1]", "revoked"]


def test_while_a_batch_is_in_hand_the_fetcher_pauses_a_little_not_for_the_whole_batch() -> None:
    intake = Intake(app_of([]), batch_max=100)

    async def slow(batch: Sequence[Record]) -> None:
        await asyncio.sleep(10 * FETCH_PAUSE_S)

    intake.add(SimpleNamespace(get_topic_name=lambda: "clicks"), slow)  # type: ignore[arg-type]

    async def scenario() -> None:
        consumer = StandInConsumer()
        running = asyncio.ensure_future(intake.run())
        await intake.take(consumer, {TP("clicks", 0): records("clicks", 0, 0)}, None)  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the batch is in hand
        fetching = asyncio.ensure_future(
            intake.take(consumer, {TP("clicks", 0): records("clicks", 0, 1)}, None)  # type: ignore[arg-type]
        )
        await asyncio.sleep(FETCH_PAUSE_S / 5)
        assert not fetching.done()  # no fetch while records trickle in
        await asyncio.sleep(3 * FETCH_PAUSE_S)
        assert fetching.done() and not intake._in_hand.done()  # type: ignore[union-attr]
        running.cancel()

    asyncio.run(scenario())


def test_records_gathered_before_a_rebalance_that_is_over_are_not_handled() -> None:
    # The partitions may be another worker's now; Faust sought back to the committed offsets.
    intake, handled = intake_of("clicks")
    consumer = StandInConsumer()
    consumer.app.consumer_generation_id = 1
    asyncio.run(intake.take(consumer, {TP("clicks", 0): records("clicks", 0, 7, 8)}, None))  # type: ignore[arg-type]
    consumer.app.consumer_generation_id = 2
    asyncio.run(intake.handle_next())
    assert intake._pending_n == 0 and handled["clicks"] == []
    assert consumer.commit(TP("clicks", 0)) is None


def test_a_fetch_that_waited_out_a_rebalance_is_handled_not_skipped(monkeypatch: Any) -> None:
    # Faust's fetcher waits for the flow to resume, which can take a whole rebalance, and
    # then fetches from the offsets it sought to. Those records belong to the new
    # generation: dropped, nothing would fetch them again.
    intake, handled = intake_of("clicks")
    stand_in = StandInConsumer()

    async def rebalance_then_fetch(self: Any, timeout: float) -> Any:
        stand_in.app.consumer_generation_id = 2
        return {TopicPartition("clicks", 0): records("clicks", 0, 3, 4)}, None

    monkeypatch.setattr(FaustConsumer, "_wait_next_records", rebalance_then_fetch)
    consumer_class = intake.app.transport.Consumer  # the class fetch_hook installed
    consumer = consumer_class.__new__(consumer_class)
    consumer.__dict__.update(vars(stand_in), highwater=stand_in.highwater)  # shares its books

    async def scenario() -> None:
        fetch, _ = await consumer._wait_next_records(1.0)
        assert fetch == {}  # taken by the intake
        await intake.handle_next()

    asyncio.run(scenario())
    assert [[r.offset for r in b] for b in handled["clicks"]] == [[3, 4]]
    assert stand_in.commit(TP("clicks", 0)) == 5
