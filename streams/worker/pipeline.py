"""The live worker: the engine driven by faust-streaming over the clickstream topic.

Owns the journey table, the handler that folds clickstream batches into it (fed by
``streams.worker.intake``; a Faust agent under ``exactly_once``), and the timer that fires rule
instants no event will bring. The engine (``streams.core.engine``) decides;
this module only moves bytes and keeps time.

Guarantee (at least once, no loss): for each batch the worker sends its invitations,
decisions and dead letters and waits for Kafka's acks *before* it writes the journeys
back to the changelogged table, and Faust commits the input offsets only after that.
A crash in between, or a rebalance before Faust's next commit, replays the batch:
records whose state was already saved are skipped (``Held.folded_already``); the
others decide again, with the same deterministic ids, so a copy may reach the topic but
nothing is lost. The shipped consumer drops copies.

Time (``streams.worker.timers``, docs/event-time.md): each partition has an event-time
clock that one visitor's bad clock cannot drag. A visitor's planned instant fires once
that clock has advanced, since the visitor's latest event was read, by the instant's
distance from that event plus ``grace_s``: never before an event of the visitor that is
still to be read, so the outcome is the backtest's.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import faust
import orjson

from schemas.errors import InvalidEvent
from schemas.events import ClickEvent, DeadLetterReason, parse_event
from streams.core.capacity import CapacityView
from streams.core.dwell import Key, PageWindow, encode_key, fold
from streams.core.engine import Step, advance, horizon, tick
from streams.core.rules import CompiledRules
from streams.settings import Settings
from streams.worker.budgets import candidate_record, watermark_records
from streams.worker.faust_adapter import (
    OFFSET_KEY,
    committed_offsets,
    held_db,
    share_table_memory,
)
from streams.worker.held import Held, decode, encode
from streams.worker.intake import Intake, Record
from streams.worker.metrics import Tally, WorkerMetrics
from streams.worker.sink import Sink
from streams.worker.tables import page_partition, partition_of, read
from streams.worker.timers import Timers

if TYPE_CHECKING:
    from streams.kafka.capacity_topic import CapacityInForce

log = logging.getLogger(__name__)

# topic, key, value, headers, partition (None: Kafka's default partitioner's for the key)
Output = tuple[str, bytes, bytes, list[tuple[str, bytes]] | None, int | None]
TIMER_EVERY_S = 0.1  # how often planned instants are looked for between batches
CONFIRM_EVERY_S = 1.0  # how often Kafka is asked whether the owned partitions are read to the end
CONFIRM_TIMEOUT_S = 10.0
SWEEP_EVERY_S = 60.0  # one owned partition's journeys are swept for the horizon this often
SWEEP_MARGIN_MS = 3_600_000  # past the horizon by this much: no late event brings it back


class Pipeline:
    """The agent, the table and the timer of one worker process."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        rules: Callable[[], CompiledRules],
        *,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        metrics: WorkerMetrics | None = None,
        capacity: CapacityView | None = None,
    ) -> None:
        self.app, self.settings, self.rules = app, settings, rules
        self.capacity = capacity  # the queues' capacity, updated in place as it arrives
        self.metrics = WorkerMetrics() if metrics is None else metrics
        self.limits = settings.limits()
        self.wall_ms = wall_ms
        self.timers = Timers(
            grace_ms=round(settings.grace_s * 1000),
            live_window_ms=round(settings.clock_live_window_s * 1000),
            idle_ms=round(settings.clock_idle_s * 1000),
            max_ahead_ms=round(settings.clock_ahead_s * 1000),
        )
        self.lock = asyncio.Lock()  # one batch or one timer round at a time
        # Page activity (dwell partials) gathered over batches, published every
        # dwell_flush_s: one record per page and window instead of one per batch.
        self.pages: dict[Key, PageWindow] = {}
        self.pages_due = time.monotonic() + settings.dwell_flush_s
        self.handled_at = -TIMER_EVERY_S  # monotonic time the latest batch was handled

        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw"}  # fmt: skip
        self.clickstream = app.topic(settings.topic_clickstream, **raw)
        self.topics = {
            name: app.topic(name, **raw)
            for name in (
                settings.topic_invitations,
                settings.topic_decisions,
                settings.topic_dlq,
                settings.topic_dwell_updates,
                settings.topic_budget,
            )
        }
        # use_partitioner: the changelog partition is the key's own (murmur2 of the visitor
        # id, as on the clickstream), so the timer may write journeys outside the stream.
        # Values stay bytes (the app's serializers are raw): orjson reads the journeys.
        options = settings.rocksdb_options()
        self.journeys = app.Table(
            "journeys", partitions=settings.partitions, use_partitioner=True,
            key_type=bytes, value_type=bytes, options=options,
        )  # fmt: skip
        share_table_memory(self.journeys, settings.table_memory_bytes, options)
        self.sink = Sink(app, transactional=settings.processing_guarantee == "exactly_once")
        app.timer(TIMER_EVERY_S, name="beckon-timers")(self.fire_timers)
        app.timer(CONFIRM_EVERY_S, name="beckon-caught-up")(self.confirm_caught_up)
        app.timer(SWEEP_EVERY_S, name="beckon-sweep")(self.sweep_journeys)
        app.timer(settings.budget_watermark_s, name="beckon-watermarks")(self.publish_watermarks)
        self.swept = 0  # partitions swept so far: the next round takes the next one
        self.journeys.on_recover(self.rebuild_wakeups)

        async def flush_on_stop(sender: Any, **kwargs: Any) -> None:
            async with self.lock:  # the consumer has stopped; the producer still runs
                await self.flush_pages()

        app.on_before_shutdown.connect(cast(Any, flush_on_stop))

    # --- the stream ---------------------------------------------------------------------
    async def take(self, batch: Sequence[Record]) -> None:
        """A batch from the intake (``streams.worker.intake``): a fetch's clickstream records."""
        async with self.lock:
            with self.metrics.batch_seconds.time():
                await self.handle(batch)

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        """The agent that reads the clickstream under ``exactly_once``."""
        # take_events is on the concrete Stream; Faust's StreamT interface omits it.
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(self.settings.batch_max, self.settings.batch_within_s):
            await self.take([event.message for event in batch])

    async def handle(self, batch: Sequence[Record]) -> None:
        """Fold one batch of clickstream records into the journeys."""
        rules, wall = self.rules(), self.wall_ms()
        journeys: dict[bytes, Held] = {}
        outputs: list[Output] = []
        wakeups: dict[bytes, int | None] = {}
        pages, n = self.pages, self.settings.partitions
        tally = Tally()
        for message in batch:
            self.timers.handled(message.partition, message.offset)
            parsed = self._parse(message.key, message.value)
            if isinstance(parsed, tuple):
                outputs.append(self._dead_letter(message, *parsed))
                tally.dead_letter(parsed[0])
                continue
            vkey = message.key
            assert vkey is not None  # _parse checked it is the visitor id
            partition = message.partition
            if self.timers.saw(partition, vkey, parsed.ts, wall):
                tally.clock_ahead += 1
            held = journeys.get(vkey) or self._load(vkey, partition_of(vkey, n))
            if held is None:
                tally.new_journeys += 1
            elif held.folded_already(partition, message.offset, parsed.ts):
                tally.replayed += 1
                continue
            elif parsed.ts < held.journey.clock:
                tally.late += 1  # counts at the journey's clock: time never runs back
            tally.event(partition, parsed.type, parsed.ts)
            journey, step = advance(
                None if held is None else held.journey, parsed, rules, self.limits, self.capacity
            )
            journeys[vkey] = Held(journey, [partition, message.offset])
            wakeups[vkey] = step.wakeup
            outputs += self._outputs(vkey, step, tally, rules)
            fold(step.pages, pages)
        for held in journeys.values():  # the clocks after the batch: later, never earlier
            assert held.read_to is not None
            held.seen_at = self.timers.seen_at(held.read_to[0], wall, held.journey.clock)
        self._collect_due(wall, rules, journeys, outputs, wakeups, tally)
        if pages and time.monotonic() >= self.pages_due:
            outputs += self._page_records()
        await self._emit(outputs)
        self.metrics.record(tally, self.wall_ms(), tally.newest)
        await self._save(journeys, wakeups)
        self.handled_at = time.monotonic()

    def _parse(
        self, key: bytes | None, raw: bytes | None
    ) -> ClickEvent | tuple[DeadLetterReason, str]:
        """The event, or why the message goes to the DLQ: (reason, detail)."""
        if raw is None:
            return (DeadLetterReason.EMPTY, "the message has no value")
        if len(raw) > self.settings.max_event_bytes:
            return (DeadLetterReason.TOO_LARGE, f"{len(raw)} bytes, over BECKON_MAX_EVENT_BYTES")
        try:
            event = parse_event(raw)
        except InvalidEvent as exc:
            return (DeadLetterReason.INVALID, str(exc))
        if key != event.visitor_id.encode():
            # The journey lives in the partition of its visitor id: a message keyed
            # otherwise would be judged by a worker that does not hold its state.
            return (DeadLetterReason.KEY_MISMATCH, "the message key must be the event's visitor_id")
        return event

    def _dead_letter(self, message: Record, reason: str, detail: str) -> Output:
        headers = [
            ("beckon.reason", reason.encode()),
            ("beckon.error", detail.encode()[:2000]),
            ("beckon.source", f"{message.topic}[{message.partition}]@{message.offset}".encode()),
        ]
        return (self.settings.topic_dlq, message.key or b"", message.value or b"", headers, None)

    # --- time -----------------------------------------------------------------------------
    async def fire_timers(self) -> None:
        """Fire the planned instants whose partition clock passed them by the grace; publish
        the page activity gathered since the last flush once it is ``dwell_flush_s`` old.

        While a batch is in hand, or one was handled within the timer's interval, there
        is nothing to do: the batches fire what is due with their own writes, and a round
        of its own would hold the next batch up for two more waits on Kafka's acks."""
        if self.lock.locked() or time.monotonic() - self.handled_at < TIMER_EVERY_S:
            return
        async with self.lock:
            await self._fire_due()
            if self.pages and time.monotonic() >= self.pages_due:
                await self.flush_pages()

    async def confirm_caught_up(self) -> None:
        """Ask Kafka how far each owned clickstream partition goes: a replay's clock runs
        on only while every record of its partition was handled (``streams.core.clock``)."""
        topic, asked = self.settings.topic_clickstream, self.wall_ms()
        try:
            consumer = self.app.consumer
            owned = [tp for tp in consumer.assignment() if tp.topic == topic]
            if not owned:
                return
            # The consumer's thread answers between fetches: seconds, now and then.
            ends = await asyncio.wait_for(consumer.highwaters(*owned), CONFIRM_TIMEOUT_S)
        except Exception as exc:  # not started, stopping, or Kafka does not answer
            log.debug("end offsets not confirmed: %r", exc)
            self.timers.unconfirmed(list(self.timers.clocks), self.wall_ms())
            return
        committed = committed_offsets(consumer)
        self.timers.confirm(
            {tp.partition: committed.get(tp) for tp in owned},
            {tp.partition: end for tp, end in ends.items()},
            asked,  # what the answer says held when it was asked, not when it came
        )

    async def sweep_journeys(self) -> None:
        """Delete the journeys of visitors gone longer than the horizon, one owned partition
        a round, so the table holds the visitors active within it (docs/event-time.md).

        Gone means the partition's clock moved on by more than the horizon since the
        visitor's latest event was read: its next event, if any, starts it anew anyway
        (``engine.horizon``). The deletions are tombstones on the changelog."""
        owned = sorted(self.timers.clocks)
        if not owned:
            return
        partition = owned[self.swept % len(owned)]
        self.swept += 1
        async with self.lock:
            now, db = self.timers.now(partition, self.wall_ms()), held_db(self.journeys, partition)
            if now is None or db is None:
                return
            limit = horizon(self.rules(), self.limits) + SWEEP_MARGIN_MS
            # The database also holds Faust's persisted offset (not a journey): skip it.
            gone = [key for key, value in db.items()
                    if key != OFFSET_KEY and now - decode(value).anchor > limit]  # fmt: skip
            for key in gone:
                await self.sink.put(self.journeys, partition, key, None)
                self.timers.forget(key)
            await self.sink.flush()
        if gone:
            self.metrics.journeys.dec(len(gone))
            log.info("partition %d: %d journeys past the horizon deleted", partition, len(gone))

    async def flush_pages(self) -> None:
        """Publish the gathered page activity (partials) to the dwell updates topic."""
        await self._emit(self._page_records())

    def _page_records(self) -> list[Output]:
        """The gathered page activity as dwell updates, and a fresh gathering."""
        window_ms, topic = self.limits.window_ms, self.settings.topic_dwell_updates
        pages, self.pages = self.pages, {}
        self.pages_due = time.monotonic() + self.settings.dwell_flush_s
        n = self.settings.partitions
        records: list[Output] = []
        for key, partial in pages.items():
            raw_key = encode_key(key)
            value = orjson.dumps(partial.to_record(*key, window_ms))
            records.append((topic, raw_key, value, None, page_partition(raw_key, n)))
        return records

    async def publish_watermarks(self) -> None:
        """Tell the budget stage (``streams.worker.budgets``) how far each owned clickstream
        partition has got: its clock less the grace and the slack, or the earliest instant
        still planned on it if that is earlier. The instants due by then are fired first,
        and their candidates acknowledged, so a watermark never passes a candidate still
        to come from its partition, but for an event later than the grace and the slack
        (docs/contract.md, "Budgets"). Nothing is sent while no queue has a budget."""
        if not self.rules().budgets:
            return
        async with self.lock:
            wall = self.wall_ms()
            await self._fire_due(wall)
            back = round((self.settings.grace_s + self.settings.budget_slack_s) * 1000)
            owned = self._owned()
            marks: dict[int, int | None] = {}
            for partition, clock in self.timers.clocks.items():
                if partition not in owned:  # revoked: its new owner speaks for it
                    continue
                now = clock.now(wall)
                if now is None:
                    if clock.caught_up_since is not None:
                        marks[partition] = None  # read to the end, never a record: empty
                    continue
                if clock.idle(wall):
                    # A replay that ended (docs/event-time.md): only its planned instants,
                    # and new records at the wall clock, can follow.
                    now = max(now, wall)
                # An instant planned before now can still be behind the clock: a fast
                # replay's visitors are timed from the clock after their batch, hours
                # of event time on. No candidate of the partition can come before it.
                earliest = self.timers.earliest(partition)
                marks[partition] = now - back if earliest is None else min(now - back, earliest)
            n, topic = self.settings.partitions, self.settings.topic_budget
            await self._emit(list(watermark_records(topic, marks, n)))

    def _owned(self) -> set[int]:
        """The clickstream partitions assigned to this worker now."""
        topic = self.settings.topic_clickstream
        try:
            return {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}
        except Exception:  # not started, or stopping
            return set()

    async def _fire_due(self, wall: int | None = None) -> None:
        journeys: dict[bytes, Held] = {}
        outputs: list[Output] = []
        wakeups: dict[bytes, int | None] = {}
        tally = Tally()
        wall = self.wall_ms() if wall is None else wall
        self._collect_due(wall, self.rules(), journeys, outputs, wakeups, tally)
        if journeys:
            await self._emit(outputs)
            self.metrics.record(tally, self.wall_ms(), {})
            await self._save(journeys, wakeups)

    def _collect_due(
        self,
        wall: int,
        rules: CompiledRules,
        journeys: dict[bytes, Held],
        outputs: list[Output],
        wakeups: dict[bytes, int | None],
        tally: Tally,
    ) -> None:
        """Tick the journeys whose planned instant is due into the given round's state.

        A batch calls it too, so its instants share the batch's acks instead of waiting
        for a timer round of their own (each round waits for Kafka twice)."""
        for partition, vkey, clock_now in list(self.timers.due(wall)):
            held = journeys.get(vkey) or self._load(vkey, partition)
            if held is None:
                continue
            limit = self.timers.limit(held, clock_now)
            step = tick(held.journey, limit, rules, self.limits, self.capacity)
            journeys[vkey] = held
            wakeups[vkey] = step.wakeup
            outputs += self._outputs(vkey, step, tally, rules)

    async def rebuild_wakeups(self) -> None:
        """After recovery or a rebalance: plan timers from the journeys this worker owns."""
        async with self.lock:
            timers, n, count = self.timers, self.settings.partitions, 0
            timers.reset()
            for vkey, value in self.journeys.items():
                count += 1
                held, partition = decode(value), partition_of(vkey, n)
                # Not the partition's clock: saved journeys can be ahead of unread records.
                timers.resume(partition, vkey, held)
                if held.journey.pending:
                    timers.schedule(vkey, partition, held, held.journey.pending[0][0])
            timers.resumed()
            # Counted here, once per recovery; between recoveries handle adds the new ones.
            self.metrics.journeys.set(count)
            log.info("timers rebuilt: %d visitors with a planned instant", len(timers.scheduled))

    # --- state and output ------------------------------------------------------------------
    def _load(self, vkey: bytes, partition: int) -> Held | None:
        value = read(self.journeys, partition, vkey)
        return None if value is None else decode(value)

    async def _save(self, journeys: dict[bytes, Held], wakeups: dict[bytes, int | None]) -> None:
        """Write the journeys back, and wait until their changelog records are acknowledged."""
        n, put = self.settings.partitions, self.sink.put
        for vkey, held in journeys.items():
            await put(self.journeys, partition_of(vkey, n), vkey, encode(held))
        await self.sink.flush()
        for vkey, held in journeys.items():
            self.timers.schedule(vkey, partition_of(vkey, n), held, wakeups.get(vkey))

    def _outputs(self, vkey: bytes, step: Step, tally: Tally, rules: CompiledRules) -> list[Output]:
        if step.answers:
            tally.answered(step.answers)
        if not step.decisions:  # most events decide nothing
            return []
        decisions, invitations = step.decisions, step.invitations
        out: list[Output] = []
        if rules.budgets and any(i["queue"] in rules.budgets for i in invitations):
            # Its queue's budget decides it (streams.worker.budgets), with its decision.
            held = {i["invitation_id"]: i for i in invitations if i["queue"] in rules.budgets}
            topic, n = self.settings.topic_budget, self.settings.partitions
            for decision in decisions:
                invitation = held.get(decision["invitation_id"])
                if invitation is not None and decision["outcome"] == "invited":
                    out.append(candidate_record(topic, decision, invitation, n))
            decisions = [d for d in decisions if d["invitation_id"] not in held]
            invitations = [i for i in invitations if i["invitation_id"] not in held]
        tally.outputs(decisions, invitations)
        for decision in decisions:
            out.append((self.settings.topic_decisions, vkey, orjson.dumps(decision), None, None))
        for invitation in invitations:
            out.append(
                (self.settings.topic_invitations, vkey, orjson.dumps(invitation), None, None)
            )
        return out

    async def _emit(self, outputs: list[Output]) -> None:
        """Send every output and wait until Kafka acknowledged them all."""
        if not outputs:
            return
        send = self.sink.send
        for topic, key, value, headers, partition in outputs:
            await send(self.topics[topic], key, value, headers, partition)
        await self.sink.flush()


def build(
    settings: Settings,
    rules: Callable[[], CompiledRules],
    capacity: CapacityInForce | None = None,
) -> tuple[faust.App, Pipeline]:
    """The app and its pipeline, ready for ``faust.Worker``.

    ``rules`` gives the rules in force; a ``RulesInForce`` also follows the rules topic.
    ``capacity``, read from the capacity topic, follows it too; without it every queue's
    capacity is unknown.
    """
    from streams.kafka.rules_topic import RulesInForce
    from streams.worker.aggregates import DwellAggregator
    from streams.worker.app import create_app
    from streams.worker.budgets import BudgetStage

    if settings.processing_guarantee == "exactly_once":
        log.warning(
            "BECKON_PROCESSING_GUARANTEE=exactly_once: measured unreliable with "
            "faust-streaming 0.15 (copies after a crash, hangs on shutdown); see "
            "docs/worker.md. at_least_once with the deduplicating consumer is the default."
        )
    app = create_app(settings)
    pipeline = Pipeline(app, settings, rules, capacity=None if capacity is None else capacity())
    pipeline.metrics.serve(app, settings.topic_clickstream)
    dwell = DwellAggregator(app, settings)
    budgets = BudgetStage(app, settings, pipeline.rules, pipeline.metrics)
    if settings.processing_guarantee == "exactly_once":
        # Faust's transactions follow the event an agent is processing.
        app.agent(pipeline.clickstream, name="beckon-process")(pipeline.process)
        app.agent(dwell.updates, name="beckon-dwell")(dwell.process)
        app.agent(budgets.topic, name="beckon-budgets")(budgets.process)
    else:
        intake = Intake(app, batch_max=settings.batch_max)
        intake.add(pipeline.clickstream, pipeline.take)
        intake.add(dwell.updates, dwell.take)
        intake.add(budgets.topic, budgets.take)
        app.task(intake.run)
    if isinstance(rules, RulesInForce):

        async def follow_rules() -> None:
            await rules.follow()

        app.task(follow_rules)
    if capacity is not None:
        pipeline.metrics.watch_capacity(capacity())

        async def follow_capacity() -> None:
            await capacity.follow()

        app.task(follow_capacity)
    return app, pipeline


def run_worker(
    settings: Settings,
    rules: Callable[[], CompiledRules],
    loglevel: str = "info",
    capacity: CapacityInForce | None = None,
) -> Any:
    """Run one worker until it is stopped (SIGTERM or Ctrl-C)."""
    from faust.worker import Worker

    from streams.core.profile import warm_up

    # The app and device-detector's rules are there for good: out of the cyclic
    # collector's sight (gc.freeze), its full collections pause the worker 45 ms instead
    # of 110. Each is frozen once it exists: the app here, the rules after the warm-up.
    def warm_up_and_freeze() -> None:
        warm_up()
        gc.freeze()

    # device-detector loads its rules and compiles its patterns on first use (~2.5 s):
    # beside Faust's start-up, which mostly waits for Kafka, not in the first batch.
    threading.Thread(target=warm_up_and_freeze, name="beckon-devices", daemon=True).start()
    app, _ = build(settings, rules, capacity)
    gc.freeze()
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    return worker.execute_from_commandline()
