"""`beckon up` as the README runs it: its own broker, a worker, the collector, delivery and
the dashboard.

On free ports, with its own cache and data: every service answers, an event posted to the
collector lands in Kafka, and SIGINT (Ctrl-C) stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from streams.settings import load_settings
from tests.helpers import descendants, free_port

pytestmark = pytest.mark.integration


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_up_runs_every_service_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("broker", "controller", "web", "collector",
                                            "delivery", "dashboard")}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("BECKON_")}
    env.update(
        BECKON_HOME=str(Path.home() / ".cache" / "beckon"),  # the jars setup fetched
        BECKON_BROKER_DIR=str(tmp_path / "broker"),
        BECKON_DATA_DIR=str(tmp_path / "worker"),
        BECKON_BROKER_PORT=str(ports["broker"]),
        BECKON_CONTROLLER_PORT=str(ports["controller"]),
        BECKON_BOOTSTRAP=f"localhost:{ports['broker']}",
        BECKON_WEB_PORT=str(ports["web"]),
        BECKON_COLLECTOR_PORT=str(ports["collector"]),
        BECKON_DELIVERY_PORT=str(ports["delivery"]),
        BECKON_DASHBOARD_PORT=str(ports["dashboard"]),
        BECKON_PARTITIONS="2",
    )
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "up"], env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            shop = f"http://localhost:{ports['delivery']}/"
            health = f"http://localhost:{ports['collector']}/healthz"
            dashboard = f"http://localhost:{ports['dashboard']}"
            urls = (shop, health, f"{dashboard}/healthz")  # the dashboard's: once Kafka answers
            deadline = time.monotonic() + 120
            while not all(map(_answers, urls)) and time.monotonic() < deadline:
                assert up.poll() is None, log_path.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
            assert all(map(_answers, urls)), log_path.read_text(errors="replace")
            started = descendants(up.pid)

            event = {"event_id": uuid.uuid4().hex, "type": "page_view", "visitor_id": "v-up",
                     "site_id": "demo-shop", "ts": int(time.time() * 1000),
                     "url": f"http://localhost:{ports['delivery']}/pricing"}  # fmt: skip
            request = urllib.request.Request(
                f"http://localhost:{ports['collector']}/v1/events", data=orjson.dumps(event),
                headers={"Content-Type": "application/json"}, method="POST",
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=15) as response:
                assert 200 <= response.status < 300
            settings = load_settings(bootstrap=f"localhost:{ports['broker']}")
            consumer = KafkaConsumer(
                settings.topic_clickstream, **settings.kafka_python_config(),
                auto_offset_reset="earliest", consumer_timeout_ms=10_000,
            )  # fmt: skip
            landed = [r for r in consumer if orjson.loads(r.value)["event_id"] == event["event_id"]]
            consumer.close()
            assert [r.key for r in landed[:1]] == [b"v-up"]
            # The dashboard reads the same cluster: the event shows in the clickstream's
            # end offsets, and the worker's group in the lag table.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with urllib.request.urlopen(f"{dashboard}/api/summary", timeout=5) as response:
                    summary = orjson.loads(response.read())
                if summary["rates"].get("events", {}).get("total", 0) >= 1 and any(
                    p["topic"] == settings.topic_clickstream for p in summary["lag"]["partitions"]
                ):
                    break
                time.sleep(1)
            assert summary["rates"]["events"]["total"] >= 1, summary
            assert summary["group"] == "beckon"
        finally:
            up.send_signal(signal.SIGINT)
            code = up.wait(timeout=120)
    text = log_path.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "demo shop: http://" in text and "stopping the broker" in text
    assert f"dashboard: http://localhost:{ports['dashboard']}/" in text
    left = [pid for pid in started if Path(f"/proc/{pid}").exists()]
    assert not left, f"processes left behind: {left}"
