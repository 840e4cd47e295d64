"""Fixtures of the integration tier, on the session's broker (``kafka_settings``):

- ``live``: settings and environment of one isolated pipeline, for workers to run;
- ``delivery_settings``: settings of a delivery service on topics of its own.

Plain helpers (a collector, a delivery service or a worker to run, invitations to publish)
are in ``tests.integration.helpers``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.kafka.topics import ensure_topics
from streams.settings import Settings


@pytest.fixture
def live(kafka_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings and environment for one isolated pipeline: its own topics and state."""
    run_id = uuid.uuid4().hex[:10]
    settings = kafka_settings.model_copy(
        update={
            "app_id": f"beckon-test-{run_id}",
            "topic_clickstream": f"live.{run_id}.clickstream",
            "topic_invitations": f"live.{run_id}.invitations",
            "topic_decisions": f"live.{run_id}.decisions",
            "topic_rules": f"live.{run_id}.rules",
            "topic_rules_history": f"live.{run_id}.rules.history",
            "topic_dlq": f"live.{run_id}.dlq",
            "topic_dwell_updates": f"live.{run_id}.dwell.updates",
            "topic_dwell": f"live.{run_id}.dwell",
            "topic_capacity": f"live.{run_id}.capacity",
            "topic_budget": f"live.{run_id}.budget",
            "partitions": 4,
            "data_dir": tmp_path / "worker",
            "grace_s": 1.0,
        }
    )
    ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BECKON_")}
    for name in ("bootstrap", "app_id", "topic_clickstream", "topic_invitations",
                 "topic_decisions", "topic_rules", "topic_rules_history", "topic_dlq",
                 "topic_dwell_updates", "topic_dwell", "topic_capacity", "topic_budget",
                 "partitions",
                 "data_dir", "grace_s"):  # fmt: skip
        env[f"BECKON_{name.upper()}"] = str(getattr(settings, name))
    yield settings, env


@pytest.fixture
def delivery_settings(kafka_settings: Settings, new_topic: Callable[..., str]) -> Settings:
    """Settings of a delivery service with its own invitations and clickstream topics."""
    return kafka_settings.model_copy(
        update={
            "topic_invitations": new_topic("delivery.invitations"),
            "topic_clickstream": new_topic("delivery.clickstream"),
            "delivery_group": f"delivery-{uuid.uuid4().hex[:8]}",
            "delivery_keepalive_s": 1.0,
        }
    )
