"""The collector's Prometheus families, its counting middleware and its ``/metrics`` page."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from streams.metrics import DURATION_BUCKETS, exposition, new_registry

PROTOCOLS: Final = ("beckon", "snowplow", "segment")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
        body, headers = exposition(self.registry)
        return web.Response(body=body, headers=headers)
