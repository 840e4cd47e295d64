"""The delivery service's Prometheus families, read from its ``Hub`` at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.delivery.hub import Hub
from streams.metrics import exposition, new_registry


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
    registry = new_registry()
    registry.register(DeliveryCounts(hub))

    async def metrics(request: web.Request) -> web.Response:
        body, headers = exposition(registry)
        return web.Response(body=body, headers=headers)

    app.router.add_get("/metrics", metrics)
