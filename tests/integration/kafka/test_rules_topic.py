"""The rules topic against a real broker: apply a file, read the rules in force back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas.rules import load_rules, queue_to_json, rule_to_json
from streams.kafka.rules_topic import apply_rules, publish_rules, read_history, read_rules
from streams.settings import Settings

pytestmark = pytest.mark.integration

THREE = """
rules:
  - {id: pricing, priority: 10, trigger: {dwell_seconds: 30}, message: {text: "Questions?"}}
  - {id: products, trigger: {pages_in_session: 3}, message: {text: "Found it?"}}
  - {id: exit, trigger: {event: exit_intent}, message: {text: "Wait!"}}
"""
WITHOUT_EXIT = """
rules:
  - {id: pricing, priority: 10, trigger: {dwell_seconds: 30}, message: {text: "Questions?"}}
  - {id: products, trigger: {pages_in_session: 3}, message: {text: "Found it?"}}
"""
BUDGETED = "queues: {sales: {budget: {invitations: 20, per: minute}}}\n" + WITHOUT_EXIT


def _rules_topic(new_topic: Callable[..., str]) -> str:
    return new_topic("rules", partitions=1, **{"cleanup.policy": "compact"})


def _messages(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record on the topic, in order (transaction markers are not records)."""
    consumer = KafkaConsumer(
        **settings.kafka_python_config(), group_id=None, isolation_level="read_committed"
    )
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        records: list[tuple[bytes | None, bytes | None]] = []
        while consumer.position(tp) < end:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [(r.key, r.value) for r in batch]
        return records
    finally:
        consumer.close()


def test_applied_rules_read_back_as_the_same_ruleset(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = _rules_topic(new_topic)
    ruleset = load_rules(THREE)

    published, deleted = apply_rules(kafka_settings, ruleset, topic)

    assert published == ["exit", "pricing", "products"]
    assert deleted == []
    book = read_rules(kafka_settings, topic)
    assert book.ruleset.version == ruleset.version
    assert book.refusals == []


def test_a_rule_left_out_of_the_file_is_tombstoned_and_gone(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = _rules_topic(new_topic)
    apply_rules(kafka_settings, load_rules(THREE), topic)

    published, deleted = apply_rules(kafka_settings, load_rules(WITHOUT_EXIT), topic)

    assert (published, deleted) == ([], ["exit"])
    assert _messages(kafka_settings, topic)[-1] == (b"exit", None)
    book = read_rules(kafka_settings, topic)
    assert book.ruleset.version == load_rules(WITHOUT_EXIT).version
    assert book.ruleset.get("exit") is None


def test_a_queue_budget_is_published_read_back_and_tombstoned_when_left_out(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = _rules_topic(new_topic)
    apply_rules(kafka_settings, load_rules(WITHOUT_EXIT), topic)
    budgeted = load_rules(BUDGETED)

    published, deleted, entry = publish_rules(
        kafka_settings, budgeted, author="test", comment="a budget for sales", topic=topic
    )

    assert (published, deleted) == (["queue:sales"], [])
    assert _messages(kafka_settings, topic)[-1] == (
        b"queue:sales",
        queue_to_json("sales", budgeted.queues["sales"]),
    )
    book = read_rules(kafka_settings, topic)
    assert book.ruleset == budgeted
    assert book.ruleset.version == budgeted.version != load_rules(WITHOUT_EXIT).version
    # The history entry is enough to restore the budget: it loads as the same rule set.
    assert entry is not None
    assert entry["queues"] == {"sales": {"budget": {"invitations": 20, "per": "minute"}}}
    history = read_history(kafka_settings)
    recorded = next(
        e for e in history if (e["version"], e["at"]) == (entry["version"], entry["at"])
    )
    assert recorded == {**entry, "offset": recorded["offset"]}
    again = load_rules(
        orjson.dumps({"rules": recorded["rules"], "queues": recorded["queues"]}).decode()
    )
    assert again.version == budgeted.version

    assert apply_rules(kafka_settings, load_rules(WITHOUT_EXIT), topic) == ([], ["queue:sales"])
    assert _messages(kafka_settings, topic)[-1] == (b"queue:sales", None)
    gone = read_rules(kafka_settings, topic).ruleset
    assert gone.version == load_rules(WITHOUT_EXIT).version
    assert dict(gone.queues) == {}


def test_unchanged_rules_are_not_sent_again(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = _rules_topic(new_topic)
    apply_rules(kafka_settings, load_rules(THREE), topic)
    assert apply_rules(kafka_settings, load_rules(THREE), topic) == ([], [])
    changed = THREE.replace("Wait!", "Before you go…")

    assert apply_rules(kafka_settings, load_rules(changed), topic) == (["exit"], [])

    keys = [key for key, _ in _messages(kafka_settings, topic)]
    assert keys == [b"exit", b"pricing", b"products", b"exit"]


def test_an_invalid_rule_message_is_refused_and_the_good_rule_stays(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = _rules_topic(new_topic)
    ruleset = load_rules(THREE)
    apply_rules(kafka_settings, ruleset, topic)
    bad = {"id": "pricing", "trigger": {"dwell_secnds": 30}, "message": {"text": "x"}}
    producer = KafkaProducer(**kafka_settings.kafka_python_config(), acks="all")
    producer.send(topic, key=b"pricing", value=orjson.dumps(bad))
    producer.close()

    book = read_rules(kafka_settings, topic)

    assert book.ruleset.version == ruleset.version
    assert len(book.refusals) == 1
    assert "trigger.dwell_secnds" in book.refusals[0]
    # The bad value is the latest under its key, so applying the file again overwrites it
    # (otherwise compaction would keep only the bad one).
    assert apply_rules(kafka_settings, ruleset, topic) == (["pricing"], [])
    again, pricing = read_rules(kafka_settings, topic), ruleset.get("pricing")
    assert pricing is not None
    assert again.latest["pricing"] == rule_to_json(pricing)
    assert again.ruleset.version == ruleset.version


def test_an_aborted_transaction_is_never_in_force(
    kafka_settings: Settings, new_topic: Callable[..., str]
) -> None:
    topic = _rules_topic(new_topic)
    ruleset = load_rules(THREE)
    apply_rules(kafka_settings, ruleset, topic)
    producer = KafkaProducer(
        **kafka_settings.kafka_python_config(), transactional_id=f"test-abort.{topic}"
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, key=b"pricing", value=None)
    producer.send(topic, key=b"exit", value=None)
    producer.flush()
    producer.abort_transaction()
    producer.close()

    book = read_rules(kafka_settings, topic)

    assert book.ruleset.version == ruleset.version
    assert apply_rules(kafka_settings, ruleset, topic) == ([], [])


def test_reading_a_missing_topic_names_it(kafka_settings: Settings) -> None:
    from schemas.errors import BrokerError

    with pytest.raises(BrokerError, match="no-such-rules-topic"):
        read_rules(kafka_settings, "no-such-rules-topic", timeout_s=1)


def _beckon(settings: Settings, topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BECKON_BOOTSTRAP": settings.bootstrap, "BECKON_TOPIC_RULES": topic}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_rules_apply_prints_ids_and_version(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = _rules_topic(new_topic)
    first, second = tmp_path / "three.yaml", tmp_path / "two.yaml"
    first.write_text(THREE)
    second.write_text(WITHOUT_EXIT)

    done = _beckon(kafka_settings, topic, "rules", "apply", str(first))
    assert done.returncode == 0, done.stderr
    assert "published: exit, pricing, products" in done.stdout
    assert load_rules(THREE).version in done.stdout

    done = _beckon(kafka_settings, topic, "rules", "apply", str(second))
    assert done.returncode == 0, done.stderr
    assert "published: -" in done.stdout
    assert "deleted: exit" in done.stdout
    assert read_rules(kafka_settings, topic).ruleset.version == load_rules(WITHOUT_EXIT).version


def test_cli_rules_apply_refuses_an_invalid_file_and_publishes_nothing(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = _rules_topic(new_topic)
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE.replace("dwell_seconds: 30", "dwell_seconds: 0"))

    done = _beckon(kafka_settings, topic, "rules", "apply", str(bad))

    assert done.returncode == 2
    assert "rules[0] (id=pricing).trigger.dwell_seconds" in done.stderr
    assert _messages(kafka_settings, topic) == []


def test_cli_rules_apply_if_empty_publishes_only_to_an_empty_topic(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    # What `beckon up` and docker-compose's rules job do with the sample: a first start
    # gets it, a restart leaves the rules published since then alone.
    topic = _rules_topic(new_topic)
    first, second = tmp_path / "three.yaml", tmp_path / "two.yaml"
    first.write_text(THREE)
    second.write_text(WITHOUT_EXIT)

    done = _beckon(kafka_settings, topic, "rules", "apply", "--if-empty", str(first))
    assert done.returncode == 0, done.stderr
    assert "published: exit, pricing, products" in done.stdout

    done = _beckon(kafka_settings, topic, "rules", "apply", "--if-empty", str(second))
    assert done.returncode == 0, done.stderr
    assert f"{topic} holds 3 rules: left as they are" in done.stdout
    assert read_rules(kafka_settings, topic).ruleset.version == load_rules(THREE).version
