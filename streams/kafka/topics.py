"""The contract's topics, declared once, and their creation on a cluster.

Beckon creates its topics itself (``beckon topics create``, and ``beckon broker start``
for the local broker) so that partition counts and the rules topic's compaction are
never left to a broker's auto-creation defaults.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from schemas.errors import BrokerError
from streams.settings import Settings

log = logging.getLogger(__name__)

# Two hours: more than a worker's capacity history (max age + delay + the one-hour margin
# of streams.core.capacity) at the default settings.
CAPACITY_COMPACTION_LAG_MS = 2 * 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def contract_topics(settings: Settings) -> list[TopicSpec]:
    """The topics of the contract, with the settings' names and partition count."""
    n = settings.partitions
    return [
        TopicSpec(settings.topic_clickstream, n),
        TopicSpec(settings.topic_invitations, n),
        TopicSpec(settings.topic_decisions, n),
        # One partition keeps every rule in one ordered log; compaction keeps the latest
        # version of each rule id and drops deleted ones after their tombstone.
        TopicSpec(settings.topic_rules, 1, {"cleanup.policy": "compact"}),
        # Every published rules version, for the console's history and rollback: never
        # compacted and never expired (one record per publish, a few KB each).
        TopicSpec(
            settings.topic_rules_history,
            1,
            {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
        ),
        TopicSpec(settings.topic_dlq, n, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        # Partial dwell aggregates from each batch, keyed by page and window; short-lived.
        TopicSpec(settings.topic_dwell_updates, n, {"retention.ms": str(24 * 3600 * 1000)}),
        # Invitations of queues with a budget, keyed by queue, and the clickstream
        # partitions' watermarks: decided within seconds, kept a day for a takeover.
        TopicSpec(settings.topic_budget, n, {"retention.ms": str(24 * 3600 * 1000)}),
        # The merged aggregate of each page and window: compaction keeps the latest.
        TopicSpec(settings.topic_dwell, n, {"cleanup.policy": "compact"}),
        # Each queue's capacity, keyed by queue. Compaction keeps the latest per queue, but
        # never within CAPACITY_COMPACTION_LAG_MS: a worker that starts reads the recent
        # history its decisions look up (docs/contract.md, "Capacity").
        TopicSpec(
            settings.topic_capacity,
            1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": str(CAPACITY_COMPACTION_LAG_MS)},
        ),
    ]


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    specs = contract_topics(settings) if specs is None else specs
    try:
        admin = KafkaAdminClient(**settings.kafka_python_config(), client_id="beckon-admin")
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap} (BECKON_BOOTSTRAP)") from exc
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.config)
            for s in missing
        ]
        # Another process may create them between our list and our create.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(new)
        created = [s.name for s in missing]
        log.info("created topics: %s", ", ".join(created))
        return created
    except KafkaError as exc:
        raise BrokerError(f"creating topics on {settings.bootstrap} failed: {exc}") from exc
    finally:
        admin.close()
