"""The metrics' counting, without Kafka: a batch's tally, what it adds to the families,
the worker's pipeline over a stand-in Faust app, the collector's route labels and the
delivery service's counts. Every value is asserted, not just the names."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.instants import format_instant, parse_instant
from schemas.rules import load_rules
from streams.collector.metrics import CollectorMetrics
from streams.core.capacity import CapacityView
from streams.core.rules import CompiledRules
from streams.delivery.hub import Hub
from streams.delivery.metrics import DeliveryCounts
from streams.metrics import METRIC_NAMES, family_of
from streams.settings import Settings
from streams.worker.metrics import ConsumerLag, Tally, WorkerMetrics
from streams.worker.pipeline import Pipeline
from streams.worker.tables import partition_of
from tests.unit.delivery.delivery_helpers import T0 as DELIVERY_T0
from tests.unit.delivery.delivery_helpers import invitation
from tests.unit.worker.standins import StandInApp, batch, click

T0 = parse_instant("2026-12-01T10:00:00Z")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def decision(rule: str, outcome: str, reason: str | None = None) -> dict[str, Any]:
    return {"rule_id": rule, "outcome": outcome, "reason": reason,
            "triggered_at": format_instant(T0)}  # fmt: skip


def test_a_tally_counts_types_reasons_and_decisions_in_plain_dicts() -> None:
    tally = Tally()
    for partition, kind, ts in [
        (0, "page_view", T0 + 5),
        (1, "page_ping", T0),
        (0, "page_view", T0),
    ]:
        tally.event(partition, kind, ts)
    tally.dead_letter("invalid")
    tally.dead_letter("invalid")
    tally.dead_letter("too_large")
    invited = decision("a", "invited")
    tally.outputs([invited, decision("b", "suppressed", "lower_priority")], [invited])
    tally.outputs([decision("a", "invited")], [])

    assert tally.types == {"page_view": 2, "page_ping": 1}
    assert tally.partitions == {0, 1}
    assert tally.newest == {0: T0 + 5, 1: T0}
    assert tally.dead == {"invalid": 2, "too_large": 1}
    assert tally.decisions == {("a", "invited", ""): 2, ("b", "suppressed", "lower_priority"): 1}
    assert tally.invitations == [("a", format_instant(T0))]


def test_record_applies_a_batch_once_acknowledged() -> None:
    metrics = WorkerMetrics()
    tally = Tally(types={"page_view": 3}, dead={"empty": 1}, new_journeys=2)
    tally.outputs([decision("a", "invited")], [decision("a", "invited")])
    metrics.record(tally, ack_ms=T0 + 2_500, newest={3: T0 - 500})
    metrics.record(Tally(types={"page_view": 1}), ack_ms=T0 + 4_000, newest={3: T0 + 1_000})

    r = metrics.registry
    assert value(r, "beckon_events_total", type="page_view") == 4
    assert value(r, "beckon_events_total", type="scroll") == 0  # every type, from zero
    assert value(r, "beckon_dlq_total", reason="empty") == 1
    assert value(r, "beckon_dlq_total", reason="key_mismatch") == 0
    assert value(r, "beckon_decisions_total", rule="a", outcome="invited", reason="") == 1
    assert value(r, "beckon_invitations_total", rule="a") == 1
    assert value(r, "beckon_trigger_latency_seconds_count") == 1
    assert value(r, "beckon_trigger_latency_seconds_sum") == 2.5
    assert value(r, "beckon_trigger_latency_seconds_bucket", le="2.5") == 1
    assert value(r, "beckon_trigger_latency_seconds_bucket", le="2.0") == 0
    assert value(r, "beckon_processing_lag_seconds", partition="3") == 3.0  # the latest batch
    assert value(r, "beckon_journeys") == 2


def test_an_event_clock_ahead_of_the_host_gives_zero_latency_not_negative() -> None:
    metrics = WorkerMetrics()
    tally = Tally()
    tally.outputs([], [decision("a", "invited")])
    metrics.record(tally, ack_ms=T0 - 1_000, newest={})
    assert value(metrics.registry, "beckon_trigger_latency_seconds_sum") == 0


def test_a_rebalance_is_counted_and_forgets_the_lag_of_partitions_gone() -> None:
    metrics = WorkerMetrics()
    metrics.record(Tally(), ack_ms=T0, newest={0: T0 - 1_000, 1: T0 - 2_000})
    metrics.assigned(iter([1, 2]))  # as the rebalance signal gives them
    metrics.assigned([1, 2])
    r = metrics.registry
    assert value(r, "beckon_rebalances_total") == 2
    assert value(r, "beckon_processing_lag_seconds", partition="0") is None
    assert value(r, "beckon_processing_lag_seconds", partition="1") == 2.0
    metrics.assigned([2])
    assert value(r, "beckon_processing_lag_seconds", partition="1") is None
    assert value(r, "beckon_rebalances_total") == 3


# --- the pipeline over a stand-in Faust app -----------------------------------------------

RULES = CompiledRules.of(load_rules("""
rules:
  - id: hello
    trigger: {dwell_seconds: 2}
    message: {text: "Hello"}
"""))  # fmt: skip


def test_the_pipeline_counts_what_it_wrote_once_per_batch() -> None:
    wall = [T0 + 500]
    pipeline = Pipeline(StandInApp(), Settings(partitions=4), lambda: RULES,  # type: ignore[arg-type]
                        wall_ms=lambda: wall[0])  # fmt: skip
    first = batch(click("v1", 1, "page_view", T0), click("v2", 1, "page_view", T0 + 100),
                  (b"v3", b"not json"))  # fmt: skip
    asyncio.run(pipeline.handle(first))
    # v1's page_ping comes 3 s into its page: the dwell instant (2 s) fires, acked at +3.5 s.
    wall[0] = T0 + 3_500
    asyncio.run(pipeline.handle(batch(click("v1", 2, "page_ping", T0 + 3_000))))

    r = pipeline.metrics.registry
    assert value(r, "beckon_events_total", type="page_view") == 2
    assert value(r, "beckon_events_total", type="page_ping") == 1
    assert value(r, "beckon_dlq_total", reason="invalid") == 1
    assert value(r, "beckon_invitations_total", rule="hello") == 1
    assert value(r, "beckon_decisions_total", rule="hello", outcome="invited", reason="") == 1
    assert value(r, "beckon_trigger_latency_seconds_count") == 1
    assert value(r, "beckon_trigger_latency_seconds_sum") == 1.5
    assert value(r, "beckon_journeys") == 2
    v1, v2 = (partition_of(v, 4) for v in (b"v1", b"v2"))
    assert value(r, "beckon_processing_lag_seconds", partition=str(v1)) == 0.5
    if v2 != v1:
        assert value(r, "beckon_processing_lag_seconds", partition=str(v2)) == 0.4

    # A recovery recounts the table (here, after the gauge drifted).
    pipeline.metrics.journeys.set(99)
    asyncio.run(pipeline.rebuild_wakeups())
    assert value(r, "beckon_journeys") == 2


def test_the_pipeline_writes_a_shadow_decision_and_no_invitation() -> None:
    shadow = CompiledRules.of(load_rules("""
rules:
  - {id: trial, mode: shadow, trigger: {dwell_seconds: 2}, message: {text: "Hello"}}
"""))  # fmt: skip
    app = StandInApp()
    pipeline = Pipeline(app, Settings(partitions=4), lambda: shadow,  # type: ignore[arg-type]
                        wall_ms=lambda: T0 + 3_500)  # fmt: skip
    asyncio.run(pipeline.handle(batch(click("v1", 1, "page_view", T0))))
    asyncio.run(pipeline.handle(batch(click("v1", 2, "page_ping", T0 + 3_000))))

    outputs = ("beckon.decisions", "beckon.invitations")
    written = [(t, orjson.loads(v)) for t, v in app.sent if v and t in outputs]
    assert [(t, d["rule_id"], d["outcome"], d["reason"]) for t, d in written] == [
        ("beckon.decisions", "trial", "shadow", None)
    ]
    r = pipeline.metrics.registry
    assert value(r, "beckon_decisions_total", rule="trial", outcome="shadow", reason="") == 1
    assert value(r, "beckon_invitations_total", rule="trial") is None
    assert value(r, "beckon_trigger_latency_seconds_count") == 0


# --- the consumer lag, the collector, the delivery service --------------------------------


class StandInConsumer:
    def __init__(self) -> None:
        self.tps = {TP("clicks", 0), TP("clicks", 1), TP("other", 0)}
        self.highwaters = {TP("clicks", 0): 120, TP("clicks", 1): 50, TP("other", 0): 9}
        self._committed_offset: dict[TP, int | None] = {}

    def assignment(self) -> set[TP]:
        return self.tps

    def highwater(self, tp: TP) -> int:
        return self.highwaters[tp]


def test_consumer_lag_is_highwater_minus_committed_for_the_owned_clickstream_partitions() -> None:
    consumer = StandInConsumer()
    for tp in consumer.tps:
        consumer._committed_offset[tp] = {0: 100, 1: None}[tp.partition]
    registry = CollectorRegistry()
    registry.register(ConsumerLag(SimpleNamespace(consumer=consumer), "clicks"))  # type: ignore[arg-type]
    lag = "beckon_consumer_lag_messages"
    assert value(registry, lag, topic="clicks", partition="0") == 20
    assert value(registry, lag, topic="clicks", partition="1") == 50  # nothing committed yet
    assert value(registry, lag, topic="other", partition="0") is None


def test_collector_requests_are_labelled_by_route_template_and_status() -> None:
    metrics = CollectorMetrics()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=400 if request.match_info["site"] == "bad" else 200)

    async def scenario() -> None:
        app = web.Application(middlewares=[metrics.middleware()])
        app.router.add_get("/v1/sites/{site}", ok)
        async with TestClient(TestServer(app)) as client:
            for path in ("/v1/sites/a", "/v1/sites/b", "/v1/sites/bad", "/nowhere"):
                (await client.get(path)).release()

    asyncio.run(scenario())
    r = metrics.registry
    assert value(r, "beckon_collector_requests_total", endpoint="/v1/sites/{site}",
                 status="200") == 2  # fmt: skip
    assert value(r, "beckon_collector_requests_total", endpoint="/v1/sites/{site}",
                 status="400") == 1  # fmt: skip
    assert value(r, "beckon_collector_requests_total", endpoint="unmatched", status="404") == 1
    assert value(r, "beckon_collector_request_seconds_count", endpoint="/v1/sites/{site}") == 3
    assert value(r, "beckon_collector_events_total", protocol="snowplow") == 0


def test_delivery_counts_are_read_from_the_hub() -> None:
    hub = Hub()
    registry = CollectorRegistry()
    registry.register(DeliveryCounts(hub))

    async def scenario() -> None:
        at = DELIVERY_T0 + 5_000
        hub.offer(invitation(1, visitor="held"), at)  # no page open
        hub.connect("open", at)
        hub.offer(invitation(2, visitor="open"), at)
        hub.offer(invitation(3, expires="2026-12-01T09:00:04.000Z"), at)
        hub.mark_shown("inv-2")
        hub.offer(invitation(2, visitor="open"), at)  # a copy of one already shown

    asyncio.run(scenario())
    counts = {o: value(registry, "beckon_delivery_invitations_total", outcome=o)
              for o in ("pushed", "held", "expired", "duplicate", "shown")}  # fmt: skip
    assert counts == {"pushed": 1, "held": 1, "expired": 1, "duplicate": 1, "shown": 1}
    assert value(registry, "beckon_delivery_streams") == 1


def test_metric_names_are_exactly_the_families_the_processes_expose() -> None:
    exposed = set()
    worker = WorkerMetrics()
    worker.registry.register(ConsumerLag(SimpleNamespace(consumer=StandInConsumer()), "clicks"))  # type: ignore[arg-type]
    worker.watch_capacity(CapacityView())
    collector, delivery = CollectorMetrics(), CollectorRegistry()
    delivery.register(DeliveryCounts(Hub()))
    for registry in (worker.registry, collector.registry, delivery):
        for family in registry.collect():
            name = family.name + ("_total" if family.type == "counter" else "")
            if name.startswith("beckon_"):
                exposed.add(name)
    assert exposed == METRIC_NAMES
    assert {s.name for f in worker.registry.collect() for s in f.samples} >= {
        "process_cpu_seconds_total", "python_info"}  # fmt: skip
    assert family_of("beckon_trigger_latency_seconds_bucket") == "beckon_trigger_latency_seconds"
    assert family_of("beckon_events_total") == "beckon_events_total"
    assert family_of("beckon_events_total_count") is None


def test_widget_answers_are_counted_by_rule_and_response_once_each() -> None:
    app, wall = StandInApp(), [T0 + 3_500]
    pipeline = Pipeline(app, Settings(partitions=4), lambda: RULES,  # type: ignore[arg-type]
                        wall_ms=lambda: wall[0])  # fmt: skip
    asyncio.run(pipeline.handle(batch(click("v1", 1, "page_view", T0),
                                      click("v1", 2, "page_ping", T0 + 3_000))))  # fmt: skip
    [invitation] = [orjson.loads(v or b"") for t, v in app.sent if t == "beckon.invitations"]

    def answer(n: int, response: str) -> tuple[bytes, bytes]:
        event = {"event_id": f"a{n}", "type": "invitation_response", "visitor_id": "v1",
                 "site_id": "shop", "ts": T0 + 4_000 + n, "url": "https://shop.example/pricing",
                 "invitation_id": invitation["invitation_id"], "response": response}  # fmt: skip
        return b"v1", orjson.dumps(event)

    # shown, accepted, and the widget's retry of accepted (a new event id, the same answer)
    asyncio.run(pipeline.handle(batch(answer(1, "shown"), answer(2, "accepted"),
                                      answer(3, "accepted"))))  # fmt: skip
    r = pipeline.metrics.registry
    assert value(r, "beckon_responses_total", rule="hello", response="shown") == 1
    assert value(r, "beckon_responses_total", rule="hello", response="accepted") == 1
    assert value(r, "beckon_events_total", type="invitation_response") == 3


def test_capacity_records_read_and_held_are_counted_from_the_view() -> None:
    view, metrics = CapacityView(), WorkerMetrics()
    metrics.watch_capacity(view)
    record = {"queue": "sales", "agents_online": 1, "free_slots": 1, "measured_at": T0}
    view.fold(b"sales", orjson.dumps(record))
    view.fold(b"sales", orjson.dumps({**record, "measured_at": T0 + 5_000}))
    view.fold(b"sales", b'{"queue": "sales"}')
    r = metrics.registry
    assert value(r, "beckon_capacity_records_total", outcome="taken") == 2
    assert value(r, "beckon_capacity_records_total", outcome="refused") == 1
    assert value(r, "beckon_capacity_held") == 2
