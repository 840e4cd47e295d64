"""`beckon broker start | status | stop` as a user runs them: a second, private broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from tests.helpers import free_port

pytestmark = pytest.mark.integration


def _beckon(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _running(pid: int) -> bool:
    """True while the process runs (an exited one this sandbox's init has not reaped yet,
    a zombie, holds no ports, files or memory: it does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except OSError:
        return False
    return state != "Z"


def test_broker_start_is_idempotent_serves_clients_and_stop_leaves_no_process(
    tmp_path: Path,
) -> None:
    port, cport = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BECKON_")},
        "BECKON_BROKER_PORT": str(port),
        "BECKON_CONTROLLER_PORT": str(cport),
        "BECKON_BROKER_DIR": str(tmp_path / "broker"),
        "BECKON_BOOTSTRAP": f"localhost:{port}",
        "BECKON_PARTITIONS": "3",
        "BECKON_BROKER_HEAP": "512m",
    }
    assert _beckon(env, "broker", "status").returncode == 1

    first = _beckon(env, "broker", "start")
    assert first.returncode == 0, first.stderr
    pid = int((tmp_path / "broker" / "broker.pid").read_text())
    try:
        again = _beckon(env, "broker", "start")
        assert again.returncode == 0, again.stderr
        assert f"pid {pid}" in again.stdout
        assert _beckon(env, "broker", "status").returncode == 0

        bootstrap = f"localhost:{port}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            topics = {t["name"]: t for t in admin.describe_topics()}
            assert len(topics["beckon.clickstream"]["partitions"]) == 3
            assert len(topics["beckon.rules"]["partitions"]) == 1
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "beckon.rules")]
            )
            rules_conf = configs["topic"]["beckon.rules"]
            assert rules_conf["cleanup.policy"]["value"] == "compact"
        finally:
            admin.close()

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        marker = uuid.uuid4().hex.encode()
        producer.send("beckon.clickstream", key=b"v1", value=marker).get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(
            "beckon.clickstream", bootstrap_servers=bootstrap, group_id="cli-test",
            auto_offset_reset="earliest", consumer_timeout_ms=10_000,
        )  # fmt: skip
        values = [r.value for r in consumer]
        consumer.close()
        assert marker in values
        assert (tmp_path / "broker" / "logs" / "server.log").stat().st_size > 0
    finally:
        stopped = _beckon(env, "broker", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not _running(pid), "the broker's JVM is still there"
    assert _beckon(env, "broker", "status").returncode == 1
    again_stopped = _beckon(env, "broker", "stop")
    assert again_stopped.returncode == 0
    assert "was not running" in again_stopped.stdout
