"""The intake: a fetch's records of its topics go to their handlers as batches, the rest to
Faust, and handled offsets become the offsets Faust commits (its own ``_new_offset``).

The real consumer, group and commits are in tests/integration/test_worker_live.py."""

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

from streams.intake import Intake, Record


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
        self.app = SimpleNamespace(monitor=SimpleNamespace(track_tp_end_offset=lambda *a: None))

    def highwater(self, tp: TP) -> int:
        return 100

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


def intake_of(*topics: str) -> tuple[Intake, dict[str, list[Sequence[Record]]]]:
    intake = Intake(app_of([]))
    handled: dict[str, list[Sequence[Record]]] = {t: [] for t in topics}
    for name in topics:

        async def handle(batch: Sequence[Record], name: str = name) -> None:
            handled[name].append(batch)

        intake.add(SimpleNamespace(get_topic_name=lambda name=name: name), handle)  # type: ignore[arg-type]
    return intake, handled


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
    asyncio.run(intake.take(consumer, fetch, None))  # type: ignore[arg-type]
    assert [[(r.partition, r.offset) for r in b] for b in handled["clicks"]] == [
        [(0, 0), (0, 1), (1, 5)]
    ]
    assert [[r.offset for r in b] for b in handled["updates"]] == [[9]]
    assert list(fetch) == [changelog]  # what Faust goes on with
    assert consumer._read_offset[TP("clicks", 0)] == 1


def test_records_fetched_as_a_rebalance_began_are_dropped_for_faust_to_fetch_again() -> None:
    intake, handled = intake_of("clicks")
    consumer = StandInConsumer()
    consumer.flow_active = False
    fetch = {TopicPartition("clicks", 0): records("clicks", 0, 0, 1)}
    asyncio.run(intake.take(consumer, fetch, None))  # type: ignore[arg-type]
    assert handled["clicks"] == [] and fetch == {}
    assert consumer.commit(TP("clicks", 0)) is None


def test_partitions_not_active_when_fetched_are_not_handled() -> None:
    intake, handled = intake_of("clicks")
    consumer = StandInConsumer()
    fetch = {TopicPartition("clicks", 0): records("clicks", 0, 0),
             TopicPartition("clicks", 1): records("clicks", 1, 0)}  # fmt: skip
    asyncio.run(intake.take(consumer, fetch, {TP("clicks", 1)}))  # type: ignore[arg-type]
    assert [[r.partition for r in b] for b in handled["clicks"]] == [[1]]


def test_handled_offsets_commit_past_gaps_between_batches() -> None:
    # Offsets 5 and 6 are two producers' transaction markers: never fetched.
    intake, _ = intake_of("clicks")
    consumer, tp = StandInConsumer(), TP("clicks", 0)
    asyncio.run(intake.take(consumer, {tp: records("clicks", 0, 0, 1, 2, 3, 4)}, None))  # type: ignore[arg-type]
    assert consumer.commit(tp) == 5
    asyncio.run(intake.take(consumer, {tp: records("clicks", 0, 7, 8, 9)}, None))  # type: ignore[arg-type]
    assert consumer.commit(tp) == 10  # Faust alone would wait for 5 and 6 for ever


def test_a_batch_fetched_again_after_a_seek_back_commits_no_lower() -> None:
    intake, _ = intake_of("clicks")
    consumer, tp = StandInConsumer(), TP("clicks", 0)
    asyncio.run(intake.take(consumer, {tp: records("clicks", 0, 0, 1, 2, 3)}, None))  # type: ignore[arg-type]
    assert consumer.commit(tp) == 4
    asyncio.run(intake.take(consumer, {tp: records("clicks", 0, 2, 3, 4, 5)}, None))  # type: ignore[arg-type]
    assert consumer.commit(tp) == 6
    assert consumer._acked[tp] == []


def test_a_batch_in_hand_is_finished_before_a_revocation_goes_on() -> None:
    receivers: list[Any] = []
    app = app_of(receivers)
    intake = Intake(app)
    steps: list[str] = []

    async def slow(batch: Sequence[Record]) -> None:
        await asyncio.sleep(0.05)
        steps.append("handled")

    intake.add(SimpleNamespace(get_topic_name=lambda: "clicks"), slow)  # type: ignore[arg-type]

    async def scenario() -> None:
        fetching = asyncio.ensure_future(
            intake.take(StandInConsumer(), {TP("clicks", 0): records("clicks", 0, 0)}, None)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0.01)
        fetching.cancel()  # Faust cancels its fetcher as a rebalance begins
        [on_revoked] = receivers
        await on_revoked(app, {TP("clicks", 0)})
        steps.append("revoked")

    asyncio.run(scenario())
    assert steps == ["handled", "revoked"]
