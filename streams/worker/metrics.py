"""The worker's Prometheus families, and the tally a batch counts into.

``Pipeline.handle`` counts into a :class:`Tally` of plain dicts and
:meth:`WorkerMetrics.record` applies it once per batch: the hot path never touches a
metric per event. docs/metrics.md says what each family means.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from schemas.events import EVENT_TYPES
from schemas.instants import parse_instant
from streams.core.capacity import CapacityView
from streams.metrics import (
    DLQ_REASONS,
    DURATION_BUCKETS,
    TRIGGER_BUCKETS,
    exposition,
    new_registry,
)
from streams.worker.faust_adapter import committed_offsets

if TYPE_CHECKING:
    import faust


@dataclass(slots=True)
class Tally:
    """What one batch (or timer round) did, counted in plain dicts on the hot path."""

    types: dict[str, int] = field(default_factory=dict)
    partitions: set[int] = field(default_factory=set)
    dead: dict[str, int] = field(default_factory=dict)
    decisions: dict[tuple[str, str, str], int] = field(default_factory=dict)
    invitations: list[tuple[str, str]] = field(default_factory=list)  # (rule, triggered_at)
    answers: dict[tuple[str, str], int] = field(default_factory=dict)  # (rule, response)
    new_journeys: int = 0
    replayed: int = 0  # records skipped: their journey holds them already
    clock_ahead: int = 0  # events far ahead of their partition's clock (docs/event-time.md)
    late: int = 0  # events older than their visitor's journey: counted at its clock
    newest: dict[int, int] = field(default_factory=dict)  # partition -> newest event time

    def event(self, partition: int, kind: str, ts: int) -> None:
        self.types[kind] = self.types.get(kind, 0) + 1
        self.partitions.add(partition)
        if ts > self.newest.get(partition, ts - 1):
            self.newest[partition] = ts

    def answered(self, answers: Iterable[tuple[str, str]]) -> None:
        """The widget's answers the engine counted: (rule id, response), each once."""
        for key in answers:
            self.answers[key] = self.answers.get(key, 0) + 1

    def dead_letter(self, reason: str) -> None:
        self.dead[reason] = self.dead.get(reason, 0) + 1

    def outputs(
        self, decisions: Iterable[dict[str, Any]], invitations: Iterable[dict[str, Any]]
    ) -> None:
        for d in decisions:
            key = (d["rule_id"], d["outcome"], d.get("reason") or "")
            self.decisions[key] = self.decisions.get(key, 0) + 1
        for i in invitations:
            self.invitations.append((i["rule_id"], i["triggered_at"]))


class WorkerMetrics:
    """The worker's families, on a registry of its own unless one is given."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = new_registry() if registry is None else registry
        self.events = Counter("beckon_events_total", "Valid clickstream events processed",
                              ["type"], registry=r)  # fmt: skip
        self.dlq = Counter("beckon_dlq_total", "Messages sent to the DLQ", ["reason"], registry=r)
        self.decisions = Counter("beckon_decisions_total", "Decisions written",
                                 ["rule", "outcome", "reason"], registry=r)  # fmt: skip
        self.invitations = Counter("beckon_invitations_total", "Invitations written",
                                   ["rule"], registry=r)  # fmt: skip
        self.budget_late = Counter(
            "beckon_budget_late_total",
            "Invitations of a queue with a budget decided after their round (docs/contract.md)",
            registry=r,
        )
        self.budget_waiting = Gauge(
            "beckon_budget_waiting",
            "Invitations of queues with a budget waiting for their round, in this worker",
            registry=r,
        )
        self.responses = Counter(
            "beckon_responses_total",
            "Widget answers to invitations (shown, accepted, declined, dismissed), each once",
            ["rule", "response"], registry=r,
        )  # fmt: skip
        self.trigger_latency = Histogram(
            "beckon_trigger_latency_seconds",
            "Kafka's acknowledgement of an invitation minus its triggered_at",
            buckets=TRIGGER_BUCKETS, registry=r,
        )  # fmt: skip
        self.processing_lag = Gauge(
            "beckon_processing_lag_seconds",
            "Wall clock minus the event time of the newest event handled on the partition",
            ["partition"], registry=r,
        )  # fmt: skip
        self.rebalances = Counter("beckon_rebalances_total", "Partition assignments received",
                                  registry=r)  # fmt: skip
        self.replayed = Counter(
            "beckon_replayed_events_total",
            "Clickstream records read again after a restart or rebalance and skipped: "
            "their journey holds them already",
            registry=r,
        )
        self.event_time = Counter(
            "beckon_event_time_outliers_total",
            "Events far ahead of their partition's clock (clock_ahead), or older than "
            "their visitor's journey (late)",
            ["kind"], registry=r,
        )  # fmt: skip
        for kind in ("clock_ahead", "late"):
            self.event_time.labels(kind)
        self.journeys = Gauge("beckon_journeys", "Journeys (visitors) in this worker's table",
                              registry=r)  # fmt: skip
        self.batch_seconds = Histogram("beckon_batch_seconds", "Time to handle one batch",
                                       buckets=DURATION_BUCKETS, registry=r)  # fmt: skip
        for kind in EVENT_TYPES:
            self.events.labels(kind)
        for reason in DLQ_REASONS:
            self.dlq.labels(reason)
        self._lagging: set[int] = set()

    def record(self, tally: Tally, ack_ms: int, newest: Mapping[int, int]) -> None:
        """Apply one batch's tally once Kafka acknowledged its outputs at ``ack_ms``.

        ``newest``: per partition, the event time of the newest event handled on it.
        """
        for kind, n in tally.types.items():
            self.events.labels(kind).inc(n)
        for reason, n in tally.dead.items():
            self.dlq.labels(reason).inc(n)
        for labels, n in tally.decisions.items():
            self.decisions.labels(*labels).inc(n)
        for (rule, response), n in tally.answers.items():
            self.responses.labels(rule, response).inc(n)
        for rule, triggered_at in tally.invitations:
            self.invitations.labels(rule).inc()
            # Clamped: an event clock ahead of this host's would give a negative latency.
            self.trigger_latency.observe(max(0, ack_ms - parse_instant(triggered_at)) / 1000)
        for partition, event_ms in newest.items():
            self.processing_lag.labels(str(partition)).set((ack_ms - event_ms) / 1000)
            self._lagging.add(partition)
        if tally.new_journeys:
            self.journeys.inc(tally.new_journeys)
        if tally.replayed:
            self.replayed.inc(tally.replayed)
        if tally.clock_ahead:
            self.event_time.labels("clock_ahead").inc(tally.clock_ahead)
        if tally.late:
            self.event_time.labels("late").inc(tally.late)

    def assigned(self, partitions: Iterable[int]) -> None:
        """A rebalance gave this worker ``partitions``: forget the lag of the others."""
        self.rebalances.inc()
        owned = set(partitions)
        for gone in self._lagging - owned:
            self.processing_lag.remove(str(gone))
        self._lagging &= owned

    def watch_capacity(self, view: CapacityView) -> None:
        """The capacity records this worker has read, from ``view`` at scrape time."""
        self.registry.register(CapacityRecords(view))

    def serve(self, app: faust.App, topic: str) -> None:
        """``/metrics`` and ``/healthz`` on the app's web server; the consumer lag of
        ``topic``; rebalances."""
        from faust.web import Request, Response, View

        self.registry.register(ConsumerLag(app, topic))

        @app.page("/metrics")
        async def metrics(view: View, request: Request) -> Response:
            body, headers = exposition(self.registry)
            return view.bytes(body, headers=headers)

        # Every Beckon service answers GET /healthz; the worker's: while its web server runs.
        @app.page("/healthz")
        async def healthz(view: View, request: Request) -> Response:
            return view.json({"status": "ok"})

        def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            [assigned] = args  # the set of TPs, after the rebalance
            self.assigned(tp.partition for tp in assigned if tp.topic == topic)

        # mode types its handlers with mypy_extensions' VarArg/NamedArg, which no def matches.
        app.on_partitions_assigned.connect(cast(Any, on_assigned))


class ConsumerLag(Collector):
    """``beckon_consumer_lag_messages``, read from the Faust consumer at scrape time:
    highwater minus the committed offset of each ``topic`` partition this worker owns."""

    NAME: Final = "beckon_consumer_lag_messages"
    HELP: Final = "Highwater minus committed offset of the owned clickstream partitions"

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app, self.topic = app, topic

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["topic", "partition"])

    def collect(self) -> Iterator[Metric]:
        from faust.exceptions import FaustError

        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["topic", "partition"])
        try:
            consumer = self.app.consumer
            owned = sorted(tp for tp in consumer.assignment() if tp.topic == self.topic)
            # None before the group's first commit, when the whole partition is behind.
            committed = committed_offsets(consumer)
            for tp in owned:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    lag = max(0, highwater - (committed.get(tp) or 0))
                    family.add_metric([tp.topic, str(tp.partition)], lag)
        except FaustError:
            pass  # not started yet, or stopping: no partitions to report
        yield family


class CapacityRecords(Collector):
    """``beckon_capacity_records_total`` (taken, or refused as invalid) and
    ``beckon_capacity_held``, read from the worker's capacity view at scrape time."""

    def __init__(self, view: CapacityView) -> None:
        self.view = view

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(self) -> list[Metric]:
        read = CounterMetricFamily(
            "beckon_capacity_records", "Capacity-topic records read: taken, or refused "
            "(invalid, or keyed other than their queue) and skipped", labels=["outcome"],
        )  # fmt: skip
        read.add_metric(["taken"], self.view.fed)
        read.add_metric(["refused"], self.view.refused)
        held = GaugeMetricFamily("beckon_capacity_held",
                                 "Capacity records held for decisions, every queue",
                                 value=len(self.view))  # fmt: skip
        return [read, held]
