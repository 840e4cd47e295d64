"""Prometheus metrics of every Beckon process: the names, the registries and the pages.

    worker      GET http://WEB_HOST:WEB_PORT/metrics                 (Faust's web server, 6066)
    collector   GET http://COLLECTOR_HOST:COLLECTOR_PORT/metrics     (8080)
    delivery    GET http://DELIVERY_HOST:DELIVERY_PORT/metrics       (8000)

Each process owns one registry, with prometheus_client's process, platform and GC
collectors beside Beckon's own families (``METRIC_NAMES``; docs/metrics.md says what each
means). The worker's hot path never touches a metric per event: ``Pipeline.handle`` counts
into a :class:`Tally` of plain dicts and :meth:`WorkerMetrics.record` applies it once per
batch. What is cheaper to read than to count (the consumer lag, the delivery service's
counts) is read at scrape time by a custom collector.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from schemas.events import EVENT_TYPES
from schemas.instants import parse_instant

if TYPE_CHECKING:
    import faust
    from aiohttp import web

    from streams.delivery.server import Hub

# The `_created` series double the series count and no dashboard reads them.
disable_created_metrics()

# Every beckon_* family, as Prometheus queries name it (a histogram's series add
# _bucket, _sum and _count). Grafana's dashboard is checked against this set.
METRIC_NAMES: Final = frozenset({
    "beckon_events_total", "beckon_dlq_total", "beckon_decisions_total",
    "beckon_invitations_total", "beckon_responses_total", "beckon_trigger_latency_seconds",
    "beckon_processing_lag_seconds", "beckon_consumer_lag_messages",
    "beckon_rebalances_total", "beckon_replayed_events_total", "beckon_journeys",
    "beckon_batch_seconds",
    "beckon_collector_requests_total", "beckon_collector_events_total",
    "beckon_collector_request_seconds",
    "beckon_delivery_invitations_total", "beckon_delivery_streams",
})  # fmt: skip

DLQ_REASONS: Final = ("empty", "too_large", "invalid", "key_mismatch")
PROTOCOLS: Final = ("beckon", "snowplow", "segment")
# Live, an invitation is acknowledged within about the grace (2 s) of its instant; a
# replay of recorded events gives hours or days, hence the long tail.
TRIGGER_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 30, 60,
                          300, 3600, 86400)  # fmt: skip
DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                           10)  # fmt: skip
HISTOGRAMS: Final = frozenset({"beckon_trigger_latency_seconds", "beckon_batch_seconds",
                               "beckon_collector_request_seconds"})  # fmt: skip
Decision = dict[str, Any]  # a decision or an invitation, as the engine returns it


def family_of(series: str) -> str | None:
    """The family of ``METRIC_NAMES`` a series belongs to (``x_seconds_count``: ``x_seconds``)."""
    if series in METRIC_NAMES:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix) and series.removesuffix(suffix) in HISTOGRAMS:
            return series.removesuffix(suffix)
    return None


def new_registry() -> CollectorRegistry:
    """A registry of one's own, with prometheus_client's process, platform and GC collectors."""
    registry = CollectorRegistry()
    for default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(default)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, dict[str, str]]:
    """The registry in Prometheus' text format, and the header that says so."""
    return generate_latest(registry), {"Content-Type": CONTENT_TYPE_LATEST}


# --- the worker ---------------------------------------------------------------------------


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

    def event(self, partition: int, kind: str) -> None:
        self.types[kind] = self.types.get(kind, 0) + 1
        self.partitions.add(partition)

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

    def assigned(self, partitions: Iterable[int]) -> None:
        """A rebalance gave this worker ``partitions``: forget the lag of the others."""
        self.rebalances.inc()
        owned = set(partitions)
        for gone in self._lagging - owned:
            self.processing_lag.remove(str(gone))
        self._lagging &= owned

    def serve(self, app: faust.App, topic: str) -> None:
        """``/metrics`` on the app's web server; the consumer lag of ``topic``; rebalances."""
        from faust.web import Request, Response, View

        self.registry.register(ConsumerLag(app, topic))

        @app.page("/metrics")
        async def metrics(view: View, request: Request) -> Response:
            body, headers = exposition(self.registry)
            return view.bytes(body, headers=headers)

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
            # Faust's own record of what it committed (next offset to read, Kafka's sense);
            # None before the group's first commit, when the whole partition is behind.
            committed = getattr(consumer, "_committed_offset", {})
            for tp in owned:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    lag = max(0, highwater - (committed.get(tp) or 0))
                    family.add_metric([tp.topic, str(tp.partition)], lag)
        except FaustError:
            pass  # not started yet, or stopping: no partitions to report
        yield family


# --- the collector ------------------------------------------------------------------------

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


class CollectorMetrics:
    """The collector's families, its middleware (outermost) and its ``/metrics`` handler."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = new_registry() if registry is None else registry
        self.requests = Counter(
            "beckon_collector_requests_total", "HTTP requests answered, by route and status",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.events = Counter("beckon_collector_events_total", "Events accepted into Kafka",
                              ["protocol"], registry=r)  # fmt: skip
        self.seconds = Histogram(
            "beckon_collector_request_seconds", "Time to answer a request, by route",
            ["endpoint"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        for protocol in PROTOCOLS:
            self.events.labels(protocol)

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        from aiohttp import web

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            start, status = time.perf_counter(), 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:  # 404, 405, ... raised by aiohttp's router
                status = exc.status
                raise
            finally:
                # The route's template, never the raw path: the label set stays bounded.
                resource = request.match_info.route.resource
                endpoint = "unmatched" if resource is None else resource.canonical
                self.requests.labels(endpoint, str(status)).inc()
                self.seconds.labels(endpoint).observe(time.perf_counter() - start)

        return count

    async def handler(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body, headers = exposition(self.registry)
        return web.Response(body=body, headers=headers)


# --- the delivery service -----------------------------------------------------------------


class DeliveryCounts(Collector):
    """The delivery service's families, read from its ``Hub`` at scrape time."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        stats = self.hub.stats()
        outcomes = CounterMetricFamily(
            "beckon_delivery_invitations", "Invitations by what the service did with them",
            labels=["outcome"],
        )  # fmt: skip
        for outcome in ("pushed", "held", "expired", "duplicate", "shown"):
            outcomes.add_metric([outcome], stats.get(outcome, 0))
        yield outcomes
        yield GaugeMetricFamily("beckon_delivery_streams", "Open SSE streams (pages)",
                                value=stats["open_pages"])  # fmt: skip


def serve_delivery(app: web.Application, hub: Hub) -> None:
    """``GET /metrics`` on the delivery service's app, counting from ``hub``."""
    from aiohttp import web

    registry = new_registry()
    registry.register(DeliveryCounts(hub))

    async def metrics(request: web.Request) -> web.Response:
        body, headers = exposition(registry)
        return web.Response(body=body, headers=headers)

    app.router.add_get("/metrics", metrics)
