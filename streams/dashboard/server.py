"""``beckon dashboard``: one live page for the whole cluster, read from Kafka alone.

    beckon dashboard     # http://localhost:8090/: the page; /api/summary: its JSON

A thread (:class:`Reader`) assigns itself every partition of the decisions, invitations,
clickstream, DLQ and dwell topics, with no consumer group, starting at the record
written ``dashboard_lookback_s`` ago, and feeds each record to the pure
:class:`streams.dashboard.board.Board`. Every ``SAMPLE_S`` it also samples the end offsets of
the clickstream and invitations topics (the rates) and the committed offsets of the
worker's group, ``app_id`` (the lag). The aiohttp app serves the page from
``streams/dashboard/static/`` and the board's summary as JSON; a lock guards the board between the
two threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from schemas.instants import format_instant
from streams.clock import now_ms
from streams.dashboard.board import Board, lag_rows
from streams.settings import Settings

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).resolve().parent / "static"
SAMPLE_S: Final = 2.0
STALE_S: Final = 15.0  # /healthz answers 503 when Kafka has not answered for this long
POLL_MS: Final = 250


class Reader:
    """Reads the topics into a board, on a thread of its own, until stopped."""

    def __init__(self, settings: Settings, board: Board, lock: threading.Lock) -> None:
        self.settings, self.board, self.lock = settings, board, lock
        self.stop = threading.Event()
        self.last_ok = 0.0  # monotonic time of the last successful sample
        self.caught_up = False
        self.error: str | None = None
        self._targets: dict[Any, int] = {}  # partition -> end offset at start (catching up)
        s = settings
        self.handlers: dict[str, Callable[[Any], None]] = {
            s.topic_decisions: lambda r: board.decision(r.timestamp, r.value),
            s.topic_invitations: lambda r: board.invitation(r.timestamp, r.value),
            s.topic_clickstream: lambda r: board.click(r.timestamp, r.value),
            s.topic_dlq: lambda r: board.dead_letter(r.timestamp, r.key, r.value, r.headers),
            s.topic_dwell: lambda r: board.dwell_record(r.key, r.value),
        }

    def run(self) -> None:
        from kafka.errors import KafkaError

        while not self.stop.is_set():
            try:
                self._follow()
            except (KafkaError, OSError) as exc:
                self.error = f"Kafka at {self.settings.bootstrap}: {exc}"
                log.warning("dashboard: %s; trying again in 2 s", self.error)
                self.stop.wait(2)
            except Exception as exc:  # never lose the thread: the page would freeze silently
                self.error = f"reading Kafka failed: {exc!r}"
                log.exception("dashboard: reading Kafka failed; trying again in 2 s")
                self.stop.wait(2)

    def _follow(self) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        config = self.settings.kafka_python_config()
        consumer = KafkaConsumer(
            **config, group_id=None, enable_auto_commit=False, client_id="beckon-dashboard",
            isolation_level="read_committed",  # as the worker's readers: no aborted writes
            max_partition_fetch_bytes=4 * 1024 * 1024, allow_auto_create_topics=False,
        )  # fmt: skip
        admin = KafkaAdminClient(**config, client_id="beckon-dashboard-admin")
        try:
            assigned: set[Any] = set()
            next_sample = 0.0
            while not self.stop.is_set():
                if time.monotonic() >= next_sample:
                    assigned = self._assign(consumer, assigned)
                    self._sample(consumer, admin, assigned)
                    next_sample = time.monotonic() + SAMPLE_S
                batches = consumer.poll(timeout_ms=POLL_MS, max_records=5000) if assigned else {}
                with self.lock:
                    for tp, records in batches.items():
                        handle = self.handlers[tp.topic]
                        for record in records:
                            handle(record)
        finally:
            consumer.close()
            admin.close()

    def _assign(self, consumer: Any, assigned: set[Any]) -> set[Any]:
        """Every partition of the topics; new ones start at now - lookback."""
        from kafka import TopicPartition

        found = {
            TopicPartition(topic, p)
            for topic in self.handlers
            for p in consumer.partitions_for_topic(topic) or ()
        }
        new = found - assigned
        if not new:
            return assigned
        consumer.assign(sorted(found))
        start = now_ms() - max(self.board.lookback_ms, self.board.long_lookback_ms or 0)
        starts = consumer.offsets_for_times(dict.fromkeys(new, start))
        ends = consumer.end_offsets(list(new))
        for tp in new:
            at = starts.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])
            if at is not None and at.offset < ends[tp]:
                self._targets[tp] = ends[tp]
        log.info("dashboard: reading %d partitions from %s", len(new), format_instant(start))
        return found

    def _sample(self, consumer: Any, admin: Any, assigned: set[Any]) -> None:
        from kafka.admin import OffsetSpec
        from kafka.errors import KafkaError

        group = self.settings.app_id
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
        except KafkaError as exc:  # e.g. no coordinator yet for a group never seen
            log.debug("dashboard: offsets of group %s: %s", group, exc)
            offsets = {}
        committed = {tp: (o.offset if o.offset >= 0 else None) for tp, o in offsets.items()}
        # The worker's source partitions show even before it commits anything.
        for tp in assigned:
            if tp.topic == self.settings.topic_clickstream:
                committed.setdefault(tp, None)
        # The admin client, not the consumer: the group may read topics we do not assign.
        partitions = set(committed) | assigned
        latest = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST))
        ends = {tp: o.offset for tp, o in latest.items()}
        # Where a never-committed partition would be read from: its lag is all it holds.
        unread = [tp for tp in partitions if committed.get(tp) is None]
        earliest = (admin.list_partition_offsets(dict.fromkeys(unread, OffsetSpec.EARLIEST))
                    if unread else {})  # fmt: skip
        starts = {tp: o.offset for tp, o in earliest.items()}
        at = now_ms()
        for tp, target in list(self._targets.items()):
            if consumer.position(tp) >= target:
                del self._targets[tp]
        with self.lock:
            for name, topic in (("events", self.settings.topic_clickstream),
                                ("invitations", self.settings.topic_invitations)):  # fmt: skip
                total = sum(end for tp, end in ends.items() if tp.topic == topic)
                self.board.end_offsets(at, name, total)
            self.board.set_lag(_lag(committed, ends, starts))
        self.caught_up = not self._targets
        self.last_ok, self.error = time.monotonic(), None

    def healthy(self) -> bool:
        return time.monotonic() - self.last_ok < STALE_S


def _lag(
    committed: dict[Any, int | None], ends: dict[Any, int], starts: dict[Any, int]
) -> list[dict[str, Any]]:
    """The lag rows of the group's partitions (TopicPartition keys to plain tuples)."""
    return lag_rows(
        {(tp.topic, tp.partition): o for tp, o in committed.items()},
        {(tp.topic, tp.partition): o for tp, o in ends.items() if tp in committed},
        {(tp.topic, tp.partition): o for tp, o in starts.items()},
    )


# --- HTTP ---------------------------------------------------------------------------------

SETTINGS: Final = web.AppKey("settings", Settings)
BOARD: Final = web.AppKey("board", Board)
LOCK: Final = web.AppKey("lock", threading.Lock)
READER: Final = web.AppKey("reader", Reader)


async def _reading(app: web.Application) -> AsyncIterator[None]:
    reader = app[READER]
    thread = threading.Thread(target=reader.run, name="beckon-dashboard", daemon=True)
    thread.start()
    try:
        yield
    finally:
        reader.stop.set()
        await asyncio.to_thread(thread.join, 10)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "dashboard.html", headers={"Cache-Control": "no-cache"})


async def summary(request: web.Request) -> web.Response:
    """GET /api/summary: every panel's numbers, as of now."""
    app, reader = request.app, request.app[READER]
    with app[LOCK]:
        data = app[BOARD].summary(now_ms())
    data.update(
        group=app[SETTINGS].app_id,
        caught_up=reader.caught_up,
        kafka={"ok": reader.healthy(), "error": reader.error},
        topics={name: getattr(app[SETTINGS], f"topic_{name}") for name in
                ("clickstream", "invitations", "decisions", "dlq", "dwell")},
    )  # fmt: skip
    return web.Response(
        body=orjson.dumps(data), content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


async def health(request: web.Request) -> web.Response:
    reader = request.app[READER]
    ok = reader.healthy()
    body = {"status": "ok" if ok else "unavailable", "caught_up": reader.caught_up,
            "error": reader.error}  # fmt: skip
    return web.json_response(body, status=200 if ok else 503)


def build_app(
    settings: Settings, *, client_max_size: int = 1024**2, funnel_lookback_s: float | None = None
) -> web.Application:
    """The dashboard's aiohttp app: its start-up starts the reader thread.

    ``funnel_lookback_s`` adds a second, longer per-rule funnel (the console's, read
    with :func:`funnel_rows`); the reader then starts that far back."""
    app = web.Application(client_max_size=client_max_size)
    app[SETTINGS] = settings
    app[BOARD] = Board(
        int(settings.dashboard_lookback_s * 1000),
        long_lookback_ms=int(funnel_lookback_s * 1000) if funnel_lookback_s else None,
    )
    app[LOCK] = threading.Lock()
    app[READER] = Reader(settings, app[BOARD], app[LOCK])
    app.router.add_get("/", index)
    app.router.add_get("/api/summary", summary)
    app.router.add_get("/healthz", health)
    app.router.add_static("/static/", STATIC)
    app.cleanup_ctx.append(_reading)
    return app


def funnel_rows(app: web.Application, *, long: bool = False) -> list[dict[str, Any]]:
    """The board's per-rule funnel as of now (``long``: over the longer lookback)."""
    with app[LOCK]:
        return app[BOARD].funnel_rows(now_ms(), long=long)


def run_dashboard(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    host, port = settings.dashboard_host, settings.dashboard_port
    web.run_app(
        build_app(settings),
        host=host,
        port=port,
        print=lambda _: print(f"dashboard: http://{host}:{port}/", flush=True),
        access_log=None,  # the page polls every 2 s: no line per poll
        shutdown_timeout=5,
    )
