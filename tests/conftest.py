"""One real Kafka broker for the whole test session (integration and e2e tiers), and factories.

The broker, in order of preference:
1. ``BECKON_BOOTSTRAP`` when set: a broker you run (e.g. ``beckon broker start``);
2. the official ``apache/kafka`` image under testcontainers, where a Docker engine answers;
3. otherwise ``beckon broker``: the project's own KRaft node from Maven Central's jars,
   on free ports with its data in the session's temporary directory, stopped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from streams.kafka.topics import TopicSpec, ensure_topics
from streams.ops import broker
from streams.settings import KAFKA_VERSION, Settings, load_settings
from tests.helpers import free_port

# Property tests check behaviour, not speed: hypothesis' default 200 ms deadline per
# example would fail them on a machine busy with a broker and workers.
hypothesis_settings.register_profile("beckon", deadline=None)
hypothesis_settings.load_profile("beckon")


def _docker_answers() -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False  # the common case here: a Docker client at most, no engine
    import docker

    # A pinned API version keeps the constructor from talking to the engine; ping does.
    client = docker.DockerClient(base_url=host, version="1.41", timeout=3)
    try:
        return bool(client.ping())
    except Exception:  # a socket without a live engine behind it
        return False
    finally:
        client.close()


def _container_bootstrap() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    container = (
        DockerContainer(f"apache/kafka:{KAFKA_VERSION}")
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://localhost:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"localhost:{port}"


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at the session's real broker."""
    if os.environ.get("BECKON_BOOTSTRAP"):
        yield load_settings()
        return
    if _docker_answers():
        for bootstrap in _container_bootstrap():
            yield load_settings(bootstrap=bootstrap)
        return
    port, cport = free_port(), free_port()
    settings = load_settings(
        bootstrap=f"localhost:{port}",
        broker_port=port,
        controller_port=cport,
        broker_dir=tmp_path_factory.mktemp("broker"),
        broker_heap="768m",
    )
    broker.start(settings)
    try:
        yield settings
    finally:
        broker.stop(settings)


@pytest.fixture
def new_topic(kafka_settings: Settings) -> Callable[..., str]:
    """A factory of uniquely named topics, so tests never see each other's messages."""

    def make(prefix: str = "test", partitions: int = 4, **config: str) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        ensure_topics(kafka_settings, [TopicSpec(name, partitions, dict(config))])
        return name

    return make


@pytest.fixture
def unique_group() -> str:
    return f"group-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker_dir(tmp_path: Path) -> Path:
    return tmp_path / "broker"
