"""The local broker's configuration and its client helpers, without starting Kafka."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from streams.kafka.consumer import SeenIds
from streams.ops import broker
from streams.ops.broker import BrokerPaths, server_properties, status
from streams.settings import Settings


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_server_properties_use_the_configured_ports_and_directory(tmp_path: Path) -> None:
    settings = Settings(broker_port=19092, controller_port=19093, partitions=5)
    props = _props(server_properties(settings, BrokerPaths(tmp_path)))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://localhost:19092,CONTROLLER://localhost:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://localhost:19092"
    assert props["controller.quorum.bootstrap.servers"] == "localhost:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "5"
    # A single node must be able to run transactions and consumer groups.
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"


def test_status_of_a_stale_pid_file_is_not_running(tmp_path: Path) -> None:
    (tmp_path / "broker.pid").write_text("1\n")  # pid 1 is not a Kafka JVM
    settings = Settings(broker_dir=tmp_path, broker_port=1, controller_port=2)
    state = status(settings)
    assert not state.running
    assert state.pid is None
    assert "not running" in str(state)


def test_seen_ids_detects_copies_and_forgets_the_oldest_beyond_capacity() -> None:
    seen = SeenIds(capacity=3)
    assert [seen.add(i) for i in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert len(seen) == 3
    assert seen.add("b") is True  # "b" was the least recently seen, so it was forgotten
    assert seen.add("d") is False  # recent ids stay remembered


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" first in URL-safe base64; kafka-storage would take it for an option.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x10" * 16)])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(draws))
    cluster_id = broker._cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(b"\x10" * 16).rstrip(b"=").decode()
    assert len(cluster_id) == 22
