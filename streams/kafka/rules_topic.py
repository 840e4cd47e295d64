"""The rules topic: what a rules message means, reading the rules in force, applying a file.

The topic has one partition and is compacted. Each message is keyed by a rule id (UTF-8)
and holds that rule's JSON (``rule_to_json``), or is keyed ``queue:<name>`` and holds that
queue's settings (``queue_to_json``); no value at all (a tombstone) deletes the rule or
the queue's settings. Folding the topic from its beginning gives the rules in force:

    RuleBook            the pure fold (``streams.core.rulebook``): accepts, replaces,
                        deletes, refuses
    read_rules()        the whole topic up to its current end, folded into a RuleBook
    publish_rules()     a whole rules set published, with its history entry, in one
                        transaction (``apply_rules`` is the CLI's form)
    read_history()      every version ever published (``beckon.rules.history``, never
                        compacted: the rules topic itself keeps only the latest per rule)

A message that does not hold a valid rule (or queue settings) is refused with the field at
fault, and what is already in force under its key stays in force (the contract: a bad rule
never takes a good one down with it).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import time
from typing import Any

import orjson

from schemas.errors import BrokerError
from schemas.instants import format_instant
from schemas.rules import RuleSet, queue_key, queue_to_json, rule_to_json
from streams.clock import now_ms
from streams.core.rulebook import RuleBook
from streams.core.rules import CompiledRules
from streams.kafka.consumer import follow_topic
from streams.kafka.topics import TopicSpec, contract_topics, ensure_topics
from streams.settings import Settings

log = logging.getLogger(__name__)


def read_rules(settings: Settings, topic: str | None = None, timeout_s: float = 10) -> RuleBook:
    """Fold the rules topic from its beginning up to its end offset at call time."""
    book = RuleBook()
    for record in _read_all(settings, topic or settings.topic_rules, timeout_s):
        book.fold(record)
    return book


def _read_all(
    settings: Settings,
    topic: str,
    timeout_s: float,
    *,
    since_ms: int | None = None,
    most: int | None = None,
) -> list[Any]:
    """Every record of ``topic`` from its beginning up to its end offsets at call time;
    with ``since_ms``, only from the first record timestamped at or after it; with
    ``most``, at most the newest ``most`` offsets of each partition.

    read_committed: a half-applied ``publish_rules`` transaction is never seen, and the
    end offset is the last stable one, so reading stops before any open transaction.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    out: list[Any] = []
    try:
        consumer = KafkaConsumer(
            **settings.kafka_python_config(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id="beckon-rules-reader",
        )
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    try:
        partitions = _partitions(consumer, topic, deadline)
        # The contract says one partition; reading every partition stays right if an
        # operator made more (each rule id still hashes to a single one).
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps, timeout_ms=_ms_left(deadline))
        if since_ms is None and most is None:
            consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if ends[tp] > 0}
        else:
            starts = _starts(consumer, tps, ends, since_ms, most, deadline)
            for tp in tps:
                consumer.seek(tp, starts[tp])
            pending = {tp for tp in tps if starts[tp] < ends[tp]}
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(f"reading the topic {topic!r} took longer than {timeout_s} s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                # Records committed after the call are left for the next read.
                out += (record for record in records if record.offset < ends[tp])
            # Positions pass transaction markers too, so compare positions, not records.
            pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
    except KafkaError as exc:
        raise BrokerError(f"reading the topic {topic!r} failed: {exc}") from exc
    finally:
        consumer.close()
    return out


def _starts(
    consumer: Any,
    tps: list[Any],
    ends: dict[Any, int],
    since_ms: int | None,
    most: int | None,
    deadline: float,
) -> dict[Any, int]:
    """Where each partition's reading starts: the first offset at or after ``since_ms``
    (the end when there is none), and no further back than ``most`` from the end."""
    starts = consumer.beginning_offsets(tps, timeout_ms=_ms_left(deadline))
    if since_ms is not None:
        found = consumer.offsets_for_times(
            dict.fromkeys(tps, max(since_ms, 0)), timeout_ms=_ms_left(deadline)
        )
        starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
    if most is not None:
        starts = {tp: max(starts[tp], ends[tp] - most) for tp in tps}
    return starts


def _partitions(consumer: Any, topic: str, deadline: float) -> set[int]:
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        if time.monotonic() > deadline:
            raise BrokerError(
                f"the topic {topic!r} does not exist; "
                "`beckon topics create` or `beckon rules apply` creates it"
            )
        time.sleep(0.2)


def _ms_left(deadline: float) -> int:
    return max(int((deadline - time.monotonic()) * 1000), 1)


def apply_rules(
    settings: Settings, ruleset: RuleSet, topic: str | None = None
) -> tuple[list[str], list[str]]:
    """Make the topic hold exactly ``ruleset``; return (published keys, deleted keys).

    ``beckon rules apply`` and ``beckon up``'s sample: a history entry is written with
    ``action: apply``, as for every publish (see :func:`publish_rules`)."""
    published, deleted, _ = publish_rules(
        settings, ruleset, author=system_user(), comment="", action="apply", topic=topic
    )
    return published, deleted


def publish_rules(
    settings: Settings,
    ruleset: RuleSet,
    *,
    author: str,
    comment: str,
    action: str = "publish",
    topic: str | None = None,
) -> tuple[list[str], list[str], dict[str, Any] | None]:
    """Make the rules topic hold exactly ``ruleset`` and record the version in the history.

    Changed and new rules and queue settings are sent, unchanged ones are not, and every
    other key on the topic gets a tombstone; the history entry goes to
    ``topic_rules_history``. All in one transaction, so a read_committed reader sees the
    old set or the new one, never a mix (a budget without the rules it was set beside),
    and never a set without its history entry. Returns (published keys, deleted keys, the
    history entry), or ([], [], None) when the topic already holds exactly ``ruleset``.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    topic = topic or settings.topic_rules
    history = settings.topic_rules_history
    ensure_topics(
        settings, [spec for spec in contract_topics(settings) if spec.name == history]
        + [TopicSpec(topic, 1, {"cleanup.policy": "compact"})],
    )  # fmt: skip
    book = read_rules(settings, topic)
    on_topic = book.latest
    wanted = {rule.id: rule_to_json(rule) for rule in ruleset}
    wanted |= {queue_key(name): queue_to_json(name, q) for name, q in ruleset.queues.items()}
    published = sorted(key for key, raw in wanted.items() if on_topic.get(key) != raw)
    deleted = sorted(set(on_topic) - set(wanted))
    if not published and not deleted:
        return [], [], None
    entry = _history_entry(ruleset, book.ruleset.version, action, author, comment)
    try:
        producer = KafkaProducer(
            **settings.kafka_python_config(),
            # One id per rules topic: a second publish running at the same time fences
            # the first instead of interleaving with it.
            transactional_id=f"beckon-rules-apply.{topic}",
            acks="all",
            enable_idempotence=True,
            client_id="beckon-rules-apply",
        )
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    try:
        producer.init_transactions()
        producer.begin_transaction()
        try:
            for key in published:
                producer.send(topic, key=key.encode(), value=wanted[key])
            for key in deleted:
                producer.send(topic, key=key.encode(), value=None)
            producer.send(history, key=ruleset.version.encode(), value=orjson.dumps(entry))
            producer.commit_transaction()
        except KafkaError:
            # If the abort fails too, the broker aborts it at transaction_timeout_ms; the
            # first error is the one worth reporting.
            with contextlib.suppress(KafkaError):
                producer.abort_transaction()
            raise
    except KafkaError as exc:
        raise BrokerError(f"applying the rules to topic {topic!r} failed: {exc}") from exc
    finally:
        producer.close()
    return published, deleted, entry


def _history_entry(
    ruleset: RuleSet, previous: str, action: str, author: str, comment: str
) -> dict[str, Any]:
    """The history record of publishing ``ruleset``: its rules as on the topic and, when
    it sets any, its queues as in a rules file, so that a rollback restores them too."""
    entry: dict[str, Any] = {
        "version": ruleset.version,
        "previous": previous,
        "action": action,
        "author": author,
        "comment": comment,
        "at": format_instant(now_ms()),
        "rules": [orjson.loads(rule_to_json(rule)) for rule in ruleset],
    }
    if ruleset.queues:
        entry["queues"] = {
            name: queue.model_dump(mode="json", exclude_defaults=True)
            for name, queue in ruleset.queues.items()
        }
    return entry


def read_history(settings: Settings, timeout_s: float = 10) -> list[dict[str, Any]]:
    """Every history entry, oldest first (read_committed: only published versions).

    An entry holds ``queues`` (as in a rules file) only when its version set some. A
    record that is not a JSON object with a version and rules is skipped with a warning:
    the history is for reading and rolling back, and one bad record must not hide the
    others."""
    entries = []
    for record in _read_all(settings, settings.topic_rules_history, timeout_s):
        try:
            entry = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            entry = None
        if not (isinstance(entry, dict) and isinstance(entry.get("version"), str)
                and isinstance(entry.get("rules"), list)
                and isinstance(entry.get("queues", {}), dict)):  # fmt: skip
            log.warning("%s@%d: not a rules history entry; skipped", record.topic, record.offset)
            continue
        entry["offset"] = record.offset
        entries.append(entry)
    return entries


def system_user() -> str:
    """The user running this process: the author of a ``beckon rules apply``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class RulesInForce:
    """The compiled rules a worker judges with, kept current from the rules topic.

    Starts from ``read_rules`` (so no event is judged before the rules are known), then
    ``follow`` keeps folding the topic: a new version is compiled once and swapped in
    whole; a refused rule leaves the rule in force under its id unchanged.
    """

    def __init__(self, settings: Settings, book: RuleBook) -> None:
        self.settings, self.book = settings, book
        self.compiled = CompiledRules.of(book.ruleset)

    def __call__(self) -> CompiledRules:
        return self.compiled

    async def follow(self, poll_s: float = 0.5) -> None:
        """Fold every rules message as it arrives, until cancelled."""
        await follow_topic(
            self.settings,
            self.settings.topic_rules,
            self._fold,
            client_id="beckon-rules-follower",
            poll_s=poll_s,
            isolation_level="read_committed",
        )

    def _fold(self, records: list[Any]) -> None:
        for record in records:
            self.book.fold(record)
        if self.book.ruleset.version != self.compiled.version:
            self.compiled = CompiledRules.of(self.book.ruleset)
            log.info("rules version %s in force (%d rules)",
                     self.compiled.version, len(self.compiled.rules))  # fmt: skip
