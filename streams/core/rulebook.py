"""The rules in force after a sequence of rules-topic messages: the pure fold.

Each message is keyed by a rule id and holds that rule's JSON, or is keyed
``queue:<name>`` and holds that queue's settings (its budget); no value (a tombstone)
deletes what the key held. A message that does not hold valid settings for its key is
refused with the field at fault, and what is already in force under its key stays in
force: a bad rule never takes a good one down with it, nor a bad budget a good one.
``streams.kafka.rules_topic`` reads the topic into a RuleBook.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from schemas.errors import InvalidRules
from schemas.rules import (
    EMPTY_RULES,
    QUEUE_KEY_PREFIX,
    Queue,
    Rule,
    RuleSet,
    parse_queue_message,
    parse_rule_message,
)

log = logging.getLogger(__name__)

MAX_REFUSALS: Final = 100  # kept for operators to read; every refusal is still counted


class RuleBook:
    """The rules in force after a sequence of rules-topic messages.

    ``latest`` keeps the latest value under every key, accepted or refused, because that
    is what compaction will keep: ``apply_rules`` compares against it, not against the
    rules in force, so a refused value on the topic is always overwritten.
    """

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}
        self._queues: dict[str, Queue] = {}
        self._latest: dict[str, bytes] = {}
        self._ruleset: RuleSet | None = EMPTY_RULES
        self.refusals: list[str] = []
        self.refused = 0
        self.applied = 0

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """Fold one message in; return None when accepted, else why it was refused."""
        self.applied += 1
        if key is None:
            return self._refuse(
                "a rules message without a key: the key must be the rule id or queue:<name>"
            )
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(f"key {key[:60]!r}: must be the rule id or queue:<name> in UTF-8")
        if value is None:
            self._latest.pop(key_text, None)
        else:
            self._latest[key_text] = value
        if key_text.startswith(QUEUE_KEY_PREFIX):
            return self._apply_queue(key_text, value)
        return self._apply_rule(key_text, value)

    def _apply_rule(self, rule_id: str, value: bytes | None) -> str | None:
        if value is None:  # a tombstone: deleting a rule that is not there is no error
            if self._rules.pop(rule_id, None) is not None:
                self._ruleset = None
            return None
        try:
            rule = parse_rule_message(value)
        except InvalidRules as exc:
            return self._refuse(f"key {rule_id!r}: {exc}{self._kept(rule_id)}")
        if rule.id != rule_id:
            return self._refuse(
                f"key {rule_id!r}: rule.id is {rule.id!r}, must equal the message key"
                f"{self._kept(rule_id)}"
            )
        if self._rules.get(rule_id) != rule:
            self._rules[rule_id] = rule
            self._ruleset = None
        return None

    def _apply_queue(self, key: str, value: bytes | None) -> str | None:
        name = key.removeprefix(QUEUE_KEY_PREFIX)
        if value is None:  # a tombstone: the queue has no settings, as if never named
            if self._queues.pop(name, None) is not None:
                self._ruleset = None
            return None
        try:
            message = parse_queue_message(value)
        except InvalidRules as exc:
            return self._refuse(f"key {key!r}: {exc}{self._queue_kept(name)}")
        if message.queue != name:
            return self._refuse(
                f"key {key!r}: queue is {message.queue!r}, must equal the name after "
                f"{QUEUE_KEY_PREFIX!r} in the message key{self._queue_kept(name)}"
            )
        # The settings alone: a QueueMessage never equals the Queue it holds.
        queue = Queue.model_validate(message.model_dump(exclude={"queue"}))
        if self._queues.get(name) != queue:
            self._queues[name] = queue
            self._ruleset = None
        return None

    @property
    def ruleset(self) -> RuleSet:
        """The rules and queue settings in force (computed once per change: RuleSet.of
        sorts and hashes)."""
        if self._ruleset is None:
            self._ruleset = RuleSet.of(self._rules.values(), self._queues)
        return self._ruleset

    @property
    def latest(self) -> Mapping[str, bytes]:
        """The latest value per key on the topic (rule ids and ``queue:<name>``),
        accepted or refused."""
        return MappingProxyType(self._latest)

    def _kept(self, rule_id: str) -> str:
        if rule_id in self._rules:
            return f"; the rule {rule_id!r} in force stays in force"
        return f"; no rule {rule_id!r} is in force"

    def _queue_kept(self, name: str) -> str:
        if name in self._queues:
            return f"; the settings of queue {name!r} in force stay in force"
        return f"; queue {name!r} has no settings in force"

    def _refuse(self, reason: str) -> str:
        self.refused += 1
        self.refusals.append(reason)
        del self.refusals[:-MAX_REFUSALS]
        return reason

    def fold(self, record: Any) -> None:
        """Apply one consumed rules-topic record; a refusal is logged with its offset."""
        reason = self.apply(record.key, record.value)
        if reason is not None:
            log.warning("%s[%d]@%d refused: %s", record.topic, record.partition,
                        record.offset, reason)  # fmt: skip

    def __repr__(self) -> str:
        return f"RuleBook(version={self.ruleset.version!r}, refused={self.refused})"
