"""/metrics of every process over a real broker, scraped and parsed as Prometheus does:
the worker's counters equal what was published and what the backtest decides; the
collector counts requests by route and status and events by protocol; the delivery
service counts what it did with each invitation and its open streams."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.clickstream import RULES_YAML, generate
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.collector.sites import Sites
from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from streams.worker.tables import partition_of
from tests.helpers import free_port
from tests.integration.helpers import (
    first_invitation,
    invitation,
    publish_invitations,
    running_collector,
    serving_delivery,
)

pytestmark = pytest.mark.integration

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]  # name -> labels -> value


def scrape(url: str) -> Samples:
    """Every sample at ``url``, parsed as Prometheus parses it."""
    answer = requests.get(url, timeout=10)
    answer.raise_for_status()
    samples: Samples = collections.defaultdict(dict)
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            samples[s.name][tuple(sorted(s.labels.items()))] = s.value
    return samples


def by(samples: Samples, name: str, label: str) -> dict[str, float]:
    """One family's values by one label, zeros left out."""
    return {dict(k)[label]: v for k, v in samples.get(name, {}).items() if v}


def one(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))


def _until(url: str, done: Callable[[Samples], bool], timeout_s: float) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            samples = scrape(url)
            if done(samples) or time.monotonic() > deadline:
                return samples
        except requests.RequestException:  # the web server is not up yet
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def test_worker_metrics_equal_what_was_published_and_what_the_backtest_decides(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    lines = list(generate(3_000, 200, seed=23))
    expected = Result()
    run(read_events(lines, expected), CompiledRules.of(load_rules(RULES_YAML)), Limits(), expected)
    assert expected.bad_lines == 0 and len(expected.invitations) > 10
    events = [orjson.loads(line) for line in lines]
    types = collections.Counter(e["type"] for e in events)
    visitors = {e["visitor_id"] for e in events}
    newest: dict[str, int] = {}  # partition -> newest event time on it
    for e in events:
        p = str(partition_of(e["visitor_id"].encode(), settings.partitions))
        newest[p] = max(newest.get(p, 0), e["ts"])
    decisions = collections.Counter(
        (d["rule_id"], d["outcome"], d["reason"] or "") for d in expected.decisions
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    url = f"http://localhost:{(port := free_port())}/metrics"

    def settled(s: Samples) -> bool:
        lag = s.get("beckon_consumer_lag_messages", {})
        return (
            sum(by(s, "beckon_events_total", "type").values()) == len(lines)
            and sum(s.get("beckon_decisions_total", {}).values()) >= len(expected.decisions)
            and len(lag) == settings.partitions
            and not any(lag.values())
        )

    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--rules", str(rules),
             "--web-port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            started_ms = int(time.time() * 1000)
            with Publisher(settings) as pub:
                pub.publish_raw(b"v-poison", b"not json")
                for e, line in zip(events, lines, strict=True):
                    pub.publish_raw(e["visitor_id"].encode(), line)
            samples = _until(url, settled, timeout_s=150)
            scraped_ms = int(time.time() * 1000)
        finally:
            worker.terminate()
            worker.wait(timeout=60)

    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert settled(samples), log_text[-3000:]
    assert by(samples, "beckon_events_total", "type") == dict(types)
    assert by(samples, "beckon_dlq_total", "reason") == {"invalid": 1}
    invitations = collections.Counter(i["rule_id"] for i in expected.invitations)
    assert by(samples, "beckon_invitations_total", "rule") == dict(invitations)
    got_decisions = {
        (dict(k)["rule"], dict(k)["outcome"], dict(k)["reason"]): v
        for k, v in samples["beckon_decisions_total"].items()
    }
    assert got_decisions == dict(decisions)
    assert one(samples, "beckon_journeys") == len(visitors) == expected.visitors
    assert one(samples, "beckon_trigger_latency_seconds_count") == len(expected.invitations)
    assert by(samples, "beckon_consumer_lag_messages", "partition") == {}  # all zero
    lags = by(samples, "beckon_processing_lag_seconds", "partition")
    assert set(lags) == set(newest)
    for p, lag in lags.items():  # set by a batch between the first publish and the scrape
        assert (started_ms - newest[p]) / 1000 <= lag <= (scraped_ms - newest[p]) / 1000
    assert (one(samples, "beckon_rebalances_total") or 0) >= 1
    assert (one(samples, "beckon_batch_seconds_count") or 0) >= 1
    assert one(samples, "process_cpu_seconds_total")


def test_collector_counts_requests_by_route_and_status_and_events_by_protocol(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    settings = kafka_settings.model_copy(update={"topic_clickstream": new_topic("metrics")})
    now = int(time.time() * 1000)

    def click(n: int) -> dict[str, Any]:
        return {"event_id": f"e{n}", "type": "page_view", "visitor_id": "v1", "site_id": "shop",
                "ts": now, "url": "https://shop.example/"}  # fmt: skip

    with running_collector(settings, Sites(None)) as url, requests.Session() as http:
        assert http.post(f"{url}/v1/events", json=[click(1), click(2)]).status_code == 200
        assert http.post(f"{url}/v1/events", json=[click(3)]).status_code == 200
        assert http.post(f"{url}/v1/events", data=b"{not json").status_code == 400
        pixel = {"e": "pv", "aid": "shop", "duid": "d1", "url": "https://shop.example/",
                 "dtm": str(now), "eid": "6a1a4d5e-8f3c-4a8e-9b1e-0c2d3e4f5a6b"}  # fmt: skip
        assert http.get(f"{url}/i", params=pixel).status_code == 200
        page = {"anonymousId": "a", "properties": {"url": "https://shop.example/"}}
        assert http.post(f"{url}/v1/page", auth=("shop", ""), json=page).status_code == 200
        assert http.get(f"{url}/nowhere").status_code == 404
        samples = scrape(f"{url}/metrics")

    requests_total = {
        (dict(k)["endpoint"], dict(k)["status"]): v
        for k, v in samples["beckon_collector_requests_total"].items()
    }
    assert requests_total == {
        ("/v1/events", "200"): 2, ("/v1/events", "400"): 1, ("/i", "200"): 1,
        ("/v1/page", "200"): 1, ("unmatched", "404"): 1,
    }  # fmt: skip
    assert by(samples, "beckon_collector_events_total", "protocol") == {
        "beckon": 3, "snowplow": 1, "segment": 1
    }  # fmt: skip
    assert one(samples, "beckon_collector_request_seconds_count", endpoint="/v1/events") == 3
    assert one(samples, "process_cpu_seconds_total")


def test_delivery_counts_what_it_did_with_each_invitation_and_its_open_streams(
    delivery_settings: Settings,
) -> None:
    settings = delivery_settings
    expired = invitation("v-open", age_s=120)
    fresh = invitation("v-open")

    async def scenario() -> tuple[Samples, Samples]:
        async with serving_delivery(settings) as base:
            publish = lambda: publish_invitations(settings, expired, fresh)  # noqa: E731
            got = await asyncio.wait_for(first_invitation(base, "v-open", publish), 30)
            assert got["invitation_id"] == fresh.invitation_id
            # The stream is closed now: its page is gone once the server notices.
            for _ in range(50):
                after = await asyncio.to_thread(scrape, f"{base}/metrics")
                if one(after, "beckon_delivery_streams") == 0:
                    break
                await asyncio.sleep(0.1)
            async with aiohttp.ClientSession() as client:
                stream = f"{base}/v1/invitations/stream?visitor_id=v-other"
                async with client.get(stream) as response:
                    await response.content.readline()  # the stream is open
                    during = await asyncio.to_thread(scrape, f"{base}/metrics")
            return during, after

    during, after = asyncio.run(scenario())
    assert by(after, "beckon_delivery_invitations_total", "outcome") == {
        "pushed": 1, "expired": 1, "shown": 1
    }  # fmt: skip
    assert one(after, "beckon_delivery_streams") == 0
    assert one(during, "beckon_delivery_streams") == 1
