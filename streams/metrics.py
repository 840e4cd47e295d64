"""Prometheus metrics shared by every Beckon process: the names, registries and buckets.

    worker      GET http://WEB_HOST:WEB_PORT/metrics                 (Faust's web server, 6066)
    collector   GET http://COLLECTOR_HOST:COLLECTOR_PORT/metrics     (8080)
    delivery    GET http://DELIVERY_HOST:DELIVERY_PORT/metrics       (8000)

Each process owns one registry, with prometheus_client's process, platform and GC
collectors beside Beckon's own families (``METRIC_NAMES``; docs/metrics.md says what each
means). The worker's hot path never touches a metric per event: ``Pipeline.handle`` counts
into a :class:`Tally` of plain dicts and :meth:`WorkerMetrics.record` applies it once per
batch. What is cheaper to read than to count (the consumer lag, the delivery service's
counts) is read at scrape time by a custom collector.

Each service keeps its own families beside its code: ``streams.worker.metrics``,
``streams.collector.metrics`` and ``streams.delivery.metrics``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

# The DLQ reasons are the contract's (DeadLetterReason); each series starts at 0.
from schemas.events import DLQ_REASONS as DLQ_REASONS

# The `_created` series double the series count and no dashboard reads them.
disable_created_metrics()

# Every beckon_* family, as Prometheus queries name it (a histogram's series add
# _bucket, _sum and _count). Grafana's dashboard is checked against this set.
METRIC_NAMES: Final = frozenset({
    "beckon_events_total", "beckon_dlq_total", "beckon_decisions_total",
    "beckon_invitations_total", "beckon_responses_total", "beckon_trigger_latency_seconds",
    "beckon_processing_lag_seconds", "beckon_consumer_lag_messages",
    "beckon_rebalances_total", "beckon_replayed_events_total", "beckon_journeys",
    "beckon_event_time_outliers_total",
    "beckon_batch_seconds", "beckon_capacity_records_total", "beckon_capacity_held",
    "beckon_budget_late_total", "beckon_budget_waiting",
    "beckon_collector_requests_total", "beckon_collector_events_total",
    "beckon_collector_request_seconds",
    "beckon_delivery_invitations_total", "beckon_delivery_streams",
})  # fmt: skip

# Live, an invitation is acknowledged within about the grace (2 s) of its instant; a
# replay of recorded events gives hours or days, hence the long tail.
TRIGGER_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 30, 60,
                          300, 3600, 86400)  # fmt: skip
DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                           10)  # fmt: skip
HISTOGRAMS: Final = frozenset({"beckon_trigger_latency_seconds", "beckon_batch_seconds",
                               "beckon_collector_request_seconds"})  # fmt: skip


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
