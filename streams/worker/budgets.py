"""The budget stage: the invitations of queues with a budget, decided in rounds of event
time behind the watermarks of every clickstream partition (docs/contract.md, "Budgets").

Two halves, both in every worker:

- **Publishing.** The pipeline sends an invitation of a queue with a budget, with its
  decision, to ``beckon.budget`` (keyed by queue, CRC-32 partitioned like the dwell
  updates) instead of the invitations and decisions topics: a *candidate*. Every
  ``budget_watermark_s`` it also sends, to every partition of that topic, each owned
  clickstream partition's *watermark*: its clock less the grace and the slack. The
  candidates of a partition go out (acknowledged) before any watermark that passes them,
  so on each budget partition a watermark of partition ``p`` comes after every on-time
  candidate of ``p`` below it.
- **Deciding.** The owner of a budget partition folds its records, in order, into
  ``streams.core.budget.Budgets``: a candidate waits for its round; a watermark moves
  its partition's mark, and every round that ends at or below the lowest mark of all
  clickstream partitions is decided. Then the invitations granted go to the
  invitations topic with their decisions, and the others' decisions, suppressed
  ``budget``, to the decisions topic.

Guarantee (at least once, as the pipeline's): the outputs are acknowledged before the
state is written to the changelogged table ``budgets``, and the input offsets are
committed after that. A crash in between reads the records again over the saved state:
candidates it holds or decided within the hour are copies and are dropped, marks only
move forward, and whatever is decided again is decided alike, so a copy of an output may
reach its topic (same id) and nothing is lost.

The table, per budget partition: ``s`` the small state (marks, buckets, rounds decided,
late count), ``c:<id>`` each waiting candidate's record, ``d:<id>`` each decided id
kept for dropping copies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from streams.core.budget import Bucket, Budgets, Candidate, over_budget
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.worker.faust_adapter import held_db, share_table_memory
from streams.worker.intake import Record
from streams.worker.metrics import Tally, WorkerMetrics
from streams.worker.sink import Sink
from streams.worker.tables import page_partition

log = logging.getLogger(__name__)

STATE_KEY = b"s"
ORPHANS_EVERY_S = 5.0  # how often waiting candidates are looked for once no budget is left
WAITING = b"c:"
DECIDED = b"d:"


def candidate_record(
    topic: str, decision: dict[str, Any], invitation: dict[str, Any], partitions: int
) -> tuple[str, bytes, bytes, None, int]:
    """The pipeline's output for an invitation of a queue with a budget."""
    queue = invitation["queue"].encode()
    value = orjson.dumps({"decision": decision, "invitation": invitation})
    return (topic, queue, value, None, page_partition(queue, partitions))


def watermark_records(
    topic: str, marks: dict[int, int | None], partitions: int
) -> list[tuple[str, bytes, bytes, None, int]]:
    """Each owned clickstream partition's watermark, to every budget partition; None for
    a partition read to its end that never had a record."""
    values = [orjson.dumps({"partition": p, "watermark": w}) for p, w in sorted(marks.items())]
    return [(topic, b"", value, None, q) for q in range(partitions) for value in values]


@dataclass
class _Partition:
    """One budget partition's state, as this worker holds it."""

    budgets: Budgets = field(default_factory=Budgets)
    marks: dict[int, int] = field(default_factory=dict)  # clickstream partition -> watermark
    empty: set[int] = field(default_factory=set)  # partitions without a record so far

    def until(self, partitions: int) -> int | None:
        """The lowest watermark, once every clickstream partition has one or is empty."""
        marks = self.marks
        if not marks or any(p not in marks and p not in self.empty for p in range(partitions)):
            return None
        return min(marks.values())

    records: dict[str, bytes] = field(default_factory=dict)  # waiting id -> its record
    saved: bytes | None = None  # the small state as last read from or written to the table

    def small(self) -> bytes:
        b = self.budgets
        return orjson.dumps({
            "marks": {str(p): w for p, w in self.marks.items()},
            "empty": sorted(self.empty),
            "buckets": {q: [k.level, k.at] for q, k in b.buckets.items()},
            "decided_to": b.decided_to,
            "late": b.late,
        })  # fmt: skip

    @classmethod
    def load(cls, items: Iterable[tuple[bytes, bytes]]) -> _Partition:
        state, decided = cls(), []
        for key, value in items:
            if key == STATE_KEY:
                state.saved = value
                small = orjson.loads(value)
                state.marks = {int(p): w for p, w in small["marks"].items()}
                state.empty = set(small.get("empty", ()))
                state.budgets.buckets = {q: Bucket(*v) for q, v in small["buckets"].items()}
                state.budgets.decided_to = small["decided_to"]
                state.budgets.late = small["late"]
            elif key.startswith(WAITING):
                invitation = orjson.loads(value)["invitation"]
                state.budgets.pending[invitation["invitation_id"]] = Candidate.of(invitation)
                state.records[invitation["invitation_id"]] = value
            elif key.startswith(DECIDED):
                decided.append((int(value), key[len(DECIDED) :].decode()))
        decided.sort()  # oldest first, as Budgets forgets them
        state.budgets.decided = {i: at for at, i in decided}
        return state


class BudgetStage:
    """Decides, in the worker that owns a budget partition, its queues' candidates."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        rules: Callable[[], CompiledRules],
        metrics: WorkerMetrics,
    ) -> None:
        self.settings, self.rules, self.metrics = settings, rules, metrics
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw"}  # fmt: skip
        self.topic = app.topic(settings.topic_budget, **raw)
        self.invitations = app.topic(settings.topic_invitations, **raw)
        self.decisions = app.topic(settings.topic_decisions, **raw)
        options = settings.rocksdb_options()
        self.table = app.Table(
            "budgets", partitions=settings.partitions, use_partitioner=True,
            key_type=bytes, value_type=bytes, options=options,
        )  # fmt: skip
        share_table_memory(self.table, settings.table_memory_bytes, options)
        self.sink = Sink(app, transactional=settings.processing_guarantee == "exactly_once")
        self.lock = asyncio.Lock()
        self.held: dict[int, _Partition] = {}
        self.table.on_recover(self.restore)
        app.timer(ORPHANS_EVERY_S, name="beckon-budget-orphans")(self.release_orphans)

    async def take(self, batch: Sequence[Record]) -> None:
        """A batch from the intake: a fetch's records of the budget topic."""
        async with self.lock:
            await self.handle(batch)

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        """The agent that reads the budget topic under ``exactly_once``."""
        batches = stream.take_events  # type: ignore[attr-defined]
        async for batch in batches(1000, 0.1):
            await self.take([event.message for event in batch])

    async def handle(self, batch: Sequence[Record]) -> None:
        budgets, n = self.rules().budgets, self.settings.partitions
        made: list[tuple[int, Candidate, bool, bytes]] = []  # partition, decided, granted
        new: dict[int, dict[str, bytes]] = {}  # partition -> records now waiting, by id
        touched: set[int] = set()
        checked: set[int] = set()
        late = 0
        for record in batch:
            q, raw = record.partition, record.value or b""
            state = self.held.get(q)
            if q not in checked:  # once a batch: a RocksDB read
                checked.add(q)
                if state is not None and not self._current(q, state):
                    state = None
            if state is None:
                state = self.held[q] = self._load(q)
            try:
                value = orjson.loads(raw)
                is_mark = "watermark" in value
                mark = value["watermark"] if is_mark else None
                candidate = None if is_mark else Candidate.of(value["invitation"])
                source = int(value["partition"]) if is_mark else None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # An internal topic: only workers write it. Say so loudly, go on.
                where = f"{record.topic}[{record.partition}]@{record.offset}"
                log.warning("skipped a malformed budget record at %s: %r", where, exc)
                continue
            touched.add(q)
            if candidate is None:
                assert source is not None
                if mark is None:  # no record yet: holds nothing back, nor a mark it had
                    state.empty.add(source)
                else:
                    state.marks[source] = max(int(mark), state.marks.get(source, int(mark)))
                until = state.until(n)
                if until is not None:
                    for decided, granted in state.budgets.release(until, budgets):
                        made.append((q, decided, granted, state.records.pop(decided.id)))
                continue
            before = state.budgets.late
            for decided, granted in state.budgets.offer(candidate, budgets):
                made.append((q, decided, granted, raw))
            if state.budgets.late > before:
                late += 1
                log.info("budget: %s (%s) came %.1f s of event time after its round was "
                         "decided: decided at once", candidate.id, candidate.queue,
                         (state.budgets.decided_to - candidate.at) / 1000)  # fmt: skip
            if candidate.id in state.budgets.pending and candidate.id not in state.records:
                state.records[candidate.id] = raw
                new.setdefault(q, {})[candidate.id] = raw
        if not touched:
            return
        await self._emit(made)
        await self._save(touched, new, made)
        if late:
            self.metrics.budget_late.inc(late)
        self.metrics.budget_waiting.set(sum(len(s.records) for s in self.held.values()))

    async def _emit(self, made: list[tuple[int, Candidate, bool, bytes]]) -> None:
        """Send what was decided, and wait for Kafka's acks."""
        if not made:
            return
        tally = Tally()
        for _, _, granted, raw in made:
            value = orjson.loads(raw)
            decision, invitation = value["decision"], value["invitation"]
            key = decision["visitor_id"].encode()
            if granted:
                tally.outputs([decision], [invitation])
                await self.sink.send(self.invitations, key, orjson.dumps(invitation))
            else:
                decision = over_budget(decision)
                tally.outputs([decision], [])
            await self.sink.send(self.decisions, key, orjson.dumps(decision))
        await self.sink.flush()
        self.metrics.record(tally, int(time.time() * 1000), {})

    async def _save(
        self,
        touched: set[int],
        new: dict[int, dict[str, bytes]],
        made: list[tuple[int, Candidate, bool, bytes]],
    ) -> None:
        """Write what changed to the table, and wait for the changelog's acks."""
        put = self.sink.put
        for q, records in new.items():
            for id_, raw in records.items():
                if id_ in self.held[q].budgets.pending:  # not decided in this very batch
                    await put(self.table, q, WAITING + id_.encode(), raw)
        for q, candidate, _, _ in made:
            key = candidate.id.encode()
            if candidate.id not in new.get(q, {}):
                await put(self.table, q, WAITING + key, None)
            await put(self.table, q, DECIDED + key, str(candidate.at).encode())
        for q in touched:
            state = self.held[q]
            for id_ in state.budgets.drain_forgotten():
                await put(self.table, q, DECIDED + id_.encode(), None)
            state.saved = state.small()
            await put(self.table, q, STATE_KEY, state.saved)
        await self.sink.flush()

    def _current(self, q: int, state: _Partition) -> bool:
        """Whether the state held here is the table's: another worker may have owned the
        partition between two rebalances this worker took part in."""
        db = held_db(self.table, q)
        return db is None or db.get(STATE_KEY) == state.saved

    def _load(self, q: int) -> _Partition:
        db = held_db(self.table, q)
        return _Partition() if db is None else _Partition.load(db.items())

    async def release_orphans(self) -> None:
        """Once no queue has a budget (the rules changed), grant what still waits: the
        workers publish no watermark any more, so its rounds would never be decided."""
        if self.rules().budgets:
            return
        async with self.lock:
            made: list[tuple[int, Candidate, bool, bytes]] = []
            touched: set[int] = set()
            for q in range(self.settings.partitions):
                if q not in self.held and held_db(self.table, q) is None:
                    continue  # not this worker's
                state = self.held.get(q) or self.held.setdefault(q, self._load(q))
                if not state.budgets.pending:
                    continue
                touched.add(q)
                for decided, granted in state.budgets.grant_all():
                    made.append((q, decided, granted, state.records.pop(decided.id)))
            if made:
                log.info("no budget left: %d waiting invitations granted", len(made))
                await self._emit(made)
                await self._save(touched, {}, made)

    async def restore(self) -> None:
        """After recovery or a rebalance: the budget partitions' state comes from the table."""
        async with self.lock:
            self.held.clear()
