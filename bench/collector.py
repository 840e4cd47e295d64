"""How many events/s the collector accepts into Kafka: ``python -m bench.collector``.

Starts ``beckon collector`` as a child process (development mode: no sites file, so no
rate limit) writing to a fresh topic on the broker of ``BECKON_BOOTSTRAP``, then drives
it for ``--seconds`` with ``--connections`` concurrent HTTP/1.1 keep-alive clients, each
posting requests of ``--batch`` events and waiting for the answer (a 2xx comes only once
Kafka acknowledged every event). It reports accepted events/s, requests/s, latency, the
collector's own CPU time, and checks that the topic holds the events answered 2xx.

    python -m bench.collector --batch 20 --connections 32 --seconds 20
    python -m bench.collector --batch 1 --connections 64 --seconds 20 --wrk
    python -m bench.collector --protocol snowplow --batch 20

The clients are aiohttp, in this process, or with ``--wrk`` the ``wrk`` load tool
(Debian: ``apt-get install wrk``), one thread, which costs far less CPU. The load, the
collector and the broker share the machine: the collector's CPU time (Linux /proc) gives
events per CPU-second, which depends less on what else the machine is doing. wrk does
not count requests still in flight when it stops, so with ``--wrk`` up to one request
per connection may land without being counted as accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from streams.kafka.topics import TopicSpec, ensure_topics
from streams.settings import Settings, load_settings

TP2 = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
PATHS = {
    "beckon": "/v1/events",
    "snowplow": "/com.snowplowanalytics.snowplow/tp2",
    "segment": "/v1/batch",
}
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0",
    "Authorization": "Basic c2hvcDo=",  # Segment write key "shop"
}


@dataclass
class Load:
    """What the clients saw: answers by status, time, latency percentiles in ms."""

    statuses: Counter[int]
    elapsed: float
    p50: float
    p99: float

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


def bodies(protocol: str, batch: int, count: int, visitors: int) -> list[bytes]:
    """``count`` distinct request bodies of ``batch`` page events each."""
    now = int(time.time() * 1000)
    out = []
    for r in range(count):
        events: list[dict[str, Any]] = []
        for i in range(batch):
            n = r * batch + i
            visitor, url = f"visitor-{n % visitors}", f"https://shop.example/products/{n % 200}"
            if protocol == "beckon":
                kind = "page_view" if i == 0 else "page_ping"
                events.append(
                    {
                        "event_id": f"b-{n}",
                        "type": kind,
                        "visitor_id": visitor,
                        "site_id": "shop",
                        "ts": now,
                        "url": url,
                    }
                )
            elif protocol == "snowplow":
                events.append(
                    {
                        "e": "pv" if i == 0 else "pp",
                        "eid": f"s-{n}",
                        "aid": "shop",
                        "duid": visitor,
                        "dtm": str(now),
                        "url": url,
                    }
                )
            else:
                events.append(
                    {
                        "type": "page",
                        "messageId": f"g-{n}",
                        "anonymousId": visitor,
                        "context": {"page": {"url": url}},
                    }
                )
        if protocol == "beckon":
            body: Any = events if batch > 1 else events[0]
        elif protocol == "snowplow":
            body = {"schema": TP2, "data": events}
        else:
            body = {"batch": events}
        out.append(orjson.dumps(body))
    return out


async def drive_aiohttp(url: str, payloads: list[bytes], connections: int, seconds: float) -> Load:
    import aiohttp

    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        i = k
        while time.monotonic() < stop_at:
            began = time.monotonic()
            async with session.post(url, data=payloads[i % len(payloads)], headers=HEADERS) as r:
                await r.read()
                statuses[r.status] += 1
            latencies.append(time.monotonic() - began)
            i += connections

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(client(k, session) for k in range(connections)))
        elapsed = time.monotonic() - began
    lat = sorted(latencies)
    return Load(statuses, elapsed, statistics.median(lat) * 1000, lat[int(len(lat) * 0.99)] * 1000)


def drive_wrk(url: str, payloads: list[bytes], connections: int, seconds: float) -> Load:
    """wrk, one thread, rotating through the bodies; parses its summary."""
    lines = ['wrk.method = "POST"'] + [f'wrk.headers["{k}"] = "{v}"' for k, v in HEADERS.items()]
    lines.append("local bodies = {")
    lines += [f"[==[{body.decode()}]==]," for body in payloads]
    lines.append(
        "}\nlocal i = 0\nrequest = function()\n  i = i + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])\nend"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("\n".join(lines))
        script.flush()
        cmd = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    summary = re.search(r"(\d+) requests in ([\d.]+)(ms|m|s)", out)
    if summary is None:
        raise SystemExit(f"cannot read wrk's summary:\n{out}")
    total = int(summary[1])
    elapsed = float(summary[2]) * {"ms": 0.001, "m": 60.0, "s": 1.0}[summary[3]]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = int(bad[1]) if bad else 0
    errors = re.search(r"Socket errors: .*", out)

    def percentile(p: str) -> float:
        found = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not found:
            return float("nan")
        return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]

    statuses = Counter({200: total - failed})
    if failed:
        statuses[0] = failed  # wrk does not say which non-2xx statuses
    if errors:
        print(f"  wrk: {errors[0]}")
    return Load(statuses, elapsed, percentile("50"), percentile("99"))


def topic_size(settings: Settings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_python_config())
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_healthy(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the collector exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit("the collector did not become healthy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.collector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--protocol", choices=sorted(PATHS), default="beckon", help="[beckon]")
    parser.add_argument("--batch", type=int, default=20, help="events per request [20]")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients [32]")
    parser.add_argument("--seconds", type=float, default=20, help="load duration [20]")
    parser.add_argument("--visitors", type=int, default=10_000, help="distinct visitors [10000]")
    parser.add_argument("--wrk", action="store_true", help="drive with wrk instead of aiohttp")
    args = parser.parse_args(argv)
    if args.wrk and shutil.which("wrk") is None:
        parser.error("--wrk needs wrk on PATH (Debian: apt-get install wrk)")

    settings = load_settings()
    topic = f"bench.collector.{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(topic, settings.partitions, {})])
    port = _free_port()
    env = {
        **os.environ,
        "BECKON_TOPIC_CLICKSTREAM": topic,
        "BECKON_COLLECTOR_PORT": str(port),
        "BECKON_COLLECTOR_HOST": "127.0.0.1",
        "BECKON_BOOTSTRAP": settings.bootstrap,
    }
    env.pop("BECKON_COLLECTOR_SITES", None)
    process = subprocess.Popen([sys.executable, "-m", "streams.cli", "collector"], env=env)
    base = f"http://127.0.0.1:{port}"
    url = base + PATHS[args.protocol]
    try:
        wait_healthy(base, process)
        payloads = bodies(args.protocol, args.batch, 500 if args.wrk else 2000, args.visitors)
        asyncio.run(drive_aiohttp(url, payloads[:50], args.connections, 2))  # warm-up
        warm, cpu_before = topic_size(settings, topic), cpu_seconds(process.pid)
        if args.wrk:
            load = drive_wrk(url, payloads, args.connections, args.seconds)
        else:
            load = asyncio.run(drive_aiohttp(url, payloads, args.connections, args.seconds))
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    accepted = load.ok * args.batch
    landed = topic_size(settings, topic) - warm
    driver = "wrk" if args.wrk else "aiohttp"
    print(
        f"collector, {args.protocol}, {args.batch} events/request, {args.connections} "
        f"connections ({driver}), {load.elapsed:.1f} s, {os.cpu_count()} cores"
    )
    print(f"  answers: {dict(load.statuses)}, {load.ok / load.elapsed:,.0f} requests/s")
    print(f"  accepted: {accepted:,} events, {accepted / load.elapsed:,.0f} events/s into Kafka")
    print(f"  latency: p50 {load.p50:.1f} ms, p99 {load.p99:.1f} ms")
    print(
        f"  collector CPU: {cpu:.1f} s ({cpu / load.elapsed:.0%} of a core), "
        f"{accepted / max(cpu, 1e-9):,.0f} events per CPU-second"
    )
    print(f"  topic {topic}: {landed:,} events landed (accepted {accepted:,})")
    print(f"  collector stopped by SIGTERM, exit code {exit_code}")
    in_flight = args.connections * args.batch if args.wrk else 0
    complete = accepted <= landed <= accepted + in_flight
    return 0 if complete and load.ok == load.statuses.total() and exit_code == 0 else 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
