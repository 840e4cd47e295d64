"""The HTTP collector (``beckon collector``): tracker requests in, ClickEvents into Kafka.

    POST /v1/events                             Beckon's JSON: one event or a list
    POST /com.snowplowanalytics.snowplow/tp2    Snowplow, batched
    GET  /i                                     Snowplow, the pixel (answers a 1x1 GIF)
    POST /v1/page /v1/track /v1/identify        Segment, one message
    POST /v1/batch                              Segment, batched
    GET  /healthz                               200 while Kafka answers, else 503
    GET  /metrics                               Prometheus (``streams.collector.metrics``)

A request is handled whole: read (413 over the size limit), mapped and validated
(``streams.collector.trackers``; 400 naming the field), checked against its site
(``streams.collector.sites``; 403, 429), then every event is sent keyed by visitor and
the 2xx waits until Kafka has acknowledged all of them (acks=all, idempotent producer).
When Kafka fails or is slow the answer is 503 with Retry-After, so trackers retry: what
was answered 2xx is in Kafka; what was answered 503 may still land, and the retry carries
the same event ids, which the engine drops as duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web

from schemas.errors import BeckonError, BrokerError, InvalidEvent
from schemas.events import event_to_json
from streams.collector.metrics import CollectorMetrics
from streams.collector.sites import Sites
from streams.collector.trackers import (
    Batch,
    Received,
    country_code,
    from_beckon,
    from_segment,
    from_snowplow_get,
    from_snowplow_post,
    primary_language,
)
from streams.collector.trackers.common import join
from streams.kafka import backoff
from streams.settings import Settings

log = logging.getLogger(__name__)

SNOWPLOW_TP2: Final = "/com.snowplowanalytics.snowplow/tp2"
KEY_HEADER: Final = "X-Beckon-Key"
SENT_HEADER: Final = "Beckon-Sent-At"
UNAVAILABLE_RETRY_S: Final = 5
PIXEL: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_CODES: Final = {400: "invalid", 403: "forbidden", 413: "too_large", 429: "rate_limited",
                 503: "unavailable"}  # fmt: skip
_NO_STORE: Final = {"Cache-Control": "no-store"}
_CORS: Final = {
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": f"Authorization, Content-Type, {KEY_HEADER}, {SENT_HEADER}",
    "Access-Control-Expose-Headers": "Retry-After",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(BeckonError):
    """A request answered with a 4xx or 503; turned into the answer by the middleware."""

    def __init__(self, status: int, field: str, message: str, retry_after: float = 0) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status, self.field, self.message = status, field, message
        self.retry_after = retry_after


class Collector:
    """The collector's state: settings, sites, rate buckets and the Kafka producer."""

    def __init__(
        self,
        settings: Settings,
        sites: Sites,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.sites = settings, sites
        self.topic = settings.topic_clickstream
        self._wall, self._monotonic = wall, monotonic
        self._producer: Any = None
        self._kafka_ok = True
        self.metrics = CollectorMetrics()

    # --- lifecycle ----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application; its start-up starts the producer, its clean-up flushes."""

        @web.middleware
        async def answers(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._answers(request, handler)

        app = web.Application(
            client_max_size=self.settings.collector_max_body_bytes,
            middlewares=[self.metrics.middleware(), answers],
        )
        routes = [("POST", "/v1/events", self.beckon), ("POST", SNOWPLOW_TP2, self.snowplow),
                  ("GET", "/i", self.pixel), ("POST", "/v1/batch", self.segment)]  # fmt: skip
        routes += [("POST", f"/v1/{kind}", self.segment) for kind in ("page", "track", "identify")]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route("OPTIONS", path, self.preflight)
        app.router.add_route("GET", "/healthz", self.healthz)
        app.router.add_route("GET", "/metrics", self.metrics.handler)
        app.on_startup.append(lambda _: self.start())
        app.on_cleanup.append(lambda _: self.stop())
        return app

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        backoff.install()  # while Kafka is away, a few metadata tries a second, not a thousand
        s = self.settings
        self._producer = AIOKafkaProducer(
            **s.aiokafka_config(),
            client_id="beckon-collector",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=max(1_048_576, s.max_event_bytes + 4096),
        )
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            await self._producer.stop()
            raise BrokerError(f"cannot reach Kafka at {s.bootstrap}: {exc}") from exc

    async def stop(self) -> None:
        """Flush what is queued (every request still waiting gets its answer) and close."""
        if self._producer is not None:
            await self._producer.stop()

    # --- endpoints ----------------------------------------------------------------------

    async def beckon(self, request: web.Request) -> web.StreamResponse:
        batch = from_beckon(await _json(request), self._received(request, "beckon"))
        key = request.headers.get(KEY_HEADER) or request.query.get("key")
        await self._admit(request, batch, key=key, check_key=True, protocol="beckon")
        return web.json_response({"accepted": len(batch.events)}, headers=_NO_STORE)

    async def snowplow(self, request: web.Request) -> web.StreamResponse:
        batch = from_snowplow_post(await _json(request), self._received(request, "snowplow"))
        await self._admit(request, batch, key=None, check_key=False, protocol="snowplow")
        return web.Response(text="ok", headers=_NO_STORE)

    async def pixel(self, request: web.Request) -> web.StreamResponse:
        batch = from_snowplow_get(request.query, self._received(request, "snowplow"))
        await self._admit(request, batch, key=None, check_key=False, protocol="snowplow")
        return web.Response(body=PIXEL, content_type="image/gif", headers=_NO_STORE)

    async def segment(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        key = _basic_user(request) or (body.get("writeKey") if isinstance(body, dict) else None)
        if not isinstance(key, str) or not key:
            raise Refused(403, "Authorization", "a write key is required (Basic auth user)")
        site = self.sites.site_of_key(key)
        if site is None:
            raise Refused(403, "Authorization", "unknown write key")
        kind = request.path.rsplit("/", 1)[1]
        received = self._received(request, "segment")
        batch = from_segment(body, None if kind == "batch" else kind, site, received)
        await self._admit(request, batch, key=key, check_key=True, protocol="segment")
        ok = {"success": True, "accepted": len(batch.events), "ignored": batch.ignored}
        return web.json_response(ok, headers=_NO_STORE)

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        # The middleware refuses an origin no site allows and adds the CORS headers.
        return web.Response(status=204, headers={"Access-Control-Max-Age": "600"})

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        from aiokafka.errors import KafkaError

        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), 2.0)
        except (KafkaError, OSError, TimeoutError):
            return web.json_response({"status": "unavailable", "kafka": "down"}, status=503)
        return web.json_response({"status": "ok", "kafka": "up"})

    # --- the steps of a request ---------------------------------------------------------

    def _received(self, request: web.Request, protocol: str) -> Received:
        s = self.settings
        sent = request.headers.get(SENT_HEADER)
        if sent is not None and not (sent.isascii() and sent.isdigit() and len(sent) < 16):
            raise Refused(400, SENT_HEADER, f"must be epoch milliseconds, got {sent[:40]!r}")
        header = s.collector_country_header
        country = request.headers.get(header) if header else None
        return Received(
            now_ms=int(self._wall() * 1000),
            user_agent=request.headers.get("User-Agent"),
            language=primary_language(request.headers.get("Accept-Language")),
            country=country_code(country),
            sent_ms=int(sent) if sent else None,
            network_id=request.cookies.get("sp") or None,
            max_skew_ms=int(s.collector_clock_skew_s * 1000),
            presence_s=self.sites.presence_s(protocol),
        )

    async def _admit(
        self,
        request: web.Request,
        batch: Batch,
        *,
        key: str | None,
        check_key: bool,
        protocol: str,
    ) -> None:
        """Site checks (403), sizes (413), rate limits (429), then Kafka (503)."""
        origin = request.headers.get("Origin")
        sites = {event.site_id: i for i, event in reversed(list(enumerate(batch.events)))}
        for site, i in sites.items():
            refused = self.sites.refusal(site, key, origin, check_key)
            if refused is not None:
                what, why = refused
                fields = {"site": join(batch.paths[i], batch.site_field), "origin": "Origin",
                          "key": KEY_HEADER if batch.site_field else "Authorization"}  # fmt: skip
                raise Refused(403, fields[what], why)
        records = []
        for i, event in enumerate(batch.events):
            value = event_to_json(event)
            if len(value) > self.settings.max_event_bytes:
                limit = f"{self.settings.max_event_bytes} bytes (BECKON_MAX_EVENT_BYTES)"
                raise Refused(413, batch.paths[i], f"the event is larger than {limit}")
            records.append((event.visitor_id.encode(), value))
        counts = collections.Counter(event.site_id for event in batch.events)
        short = self.sites.take(counts, self._monotonic())
        if short is not None:
            site, wait = short
            if math.isinf(wait):
                raise Refused(413, "", f"more events in one request than site {site!r} allows")
            raise Refused(429, "", f"site {site!r} is over its rate limit", retry_after=wait)
        await self._send(records)
        self.metrics.events.labels(protocol).inc(len(records))

    async def _send(self, records: list[tuple[bytes, bytes]]) -> None:
        """Send every record and wait for all the acknowledgements, or raise 503."""
        from aiokafka.errors import KafkaError

        futures: list[asyncio.Future[Any]] = []
        try:
            # One timeout for the whole request: a task or timer per event costs more
            # than the send itself.
            async with asyncio.timeout(self.settings.collector_ack_timeout_s):
                for key, value in records:
                    futures.append(await self._producer.send(self.topic, value, key=key))
                if futures:
                    await asyncio.wait(futures)  # never cancels them, unlike gather
            for future in futures:
                future.result()
        except (KafkaError, TimeoutError) as exc:
            for future in futures:
                future.add_done_callback(_retrieve)
            if self._kafka_ok:
                log.warning("Kafka did not acknowledge events, answering 503: %r", exc)
            self._kafka_ok = False
            message = "Kafka did not acknowledge the events; retry later"
            raise Refused(503, "", message, retry_after=UNAVAILABLE_RETRY_S) from exc
        if not self._kafka_ok:
            log.warning("Kafka acknowledges events again")
            self._kafka_ok = True

    # --- answers ------------------------------------------------------------------------

    async def _answers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refusals as JSON answers; CORS for the origins some site allows."""
        origin = request.headers.get("Origin")
        cors = origin is not None and self.sites.origin_allowed(origin)
        try:
            if origin is not None and not cors:
                raise Refused(403, "Origin", f"{origin[:200]!r} is not an origin of any site")
            response = await handler(request)
        except Refused as exc:
            response = _refusal(exc.status, [(exc.field, exc.message)], exc.retry_after)
        except InvalidEvent as exc:
            response = _refusal(400, exc.problems)
        except web.HTTPRequestEntityTooLarge:
            limit = self.settings.collector_max_body_bytes
            why = f"the body is larger than {limit} bytes (BECKON_COLLECTOR_MAX_BODY_BYTES)"
            response = _refusal(413, [("", why)])
        if cors and origin is not None:
            response.headers.update(_CORS)
            response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        return response


async def _json(request: web.Request) -> Any:
    raw = await request.read()  # over client_max_size: HTTPRequestEntityTooLarge
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([("", f"the body is not JSON: {exc}")]) from exc


def _basic_user(request: web.Request) -> str | None:
    """The user name of Basic authorization (Segment's write key), else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(token.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Refused(403, "Authorization", "must be Basic with the write key as user") from exc


def _refusal(status: int, problems: list[tuple[str, str]], retry_after: float = 0) -> web.Response:
    text = "; ".join(f"{field}: {message}" if field else message for field, message in problems)
    body = {"code": _CODES[status], "message": text, "field": problems[0][0],
            "problems": [{"field": f, "message": m} for f, m in problems]}  # fmt: skip
    headers = dict(_NO_STORE)
    if retry_after:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.json_response(body, status=status, headers=headers)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A send whose request was answered 503 may still fail later: read its error so
    # asyncio does not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()


def run_collector(settings: Settings) -> None:
    """Serve until SIGTERM or Ctrl-C, then answer the requests in flight and flush."""
    sites = Sites.load(settings.collector_sites)
    collector = Collector(settings, sites)
    mode = (
        "every site (development)"
        if sites.development
        else f"sites from {settings.collector_sites}"
    )
    url = f"http://{settings.collector_host}:{settings.collector_port}"

    def announce(_: str) -> None:
        print(f"collector on {url} -> {settings.topic_clickstream} ({mode})", file=sys.stderr)

    web.run_app(
        collector.app(),
        host=settings.collector_host,
        port=settings.collector_port,
        access_log=None,
        print=announce,
        shutdown_timeout=settings.collector_ack_timeout_s + 5,
    )
