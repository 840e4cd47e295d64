"""The rules in force after a sequence of rules-topic messages: the pure fold.

Each message is keyed by a rule id and holds that rule's JSON, or no value (a tombstone)
to delete it. A message that does not hold a valid rule is refused with the field at
fault, and the rule already in force under its key stays in force: a bad rule never takes
a good one down with it. ``streams.kafka.rules_topic`` reads the topic into a RuleBook.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from schemas.errors import InvalidRules
from schemas.rules import EMPTY_RULES, Rule, RuleSet, parse_rule_message

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
        self._latest: dict[str, bytes] = {}
        self._ruleset: RuleSet | None = EMPTY_RULES
        self.refusals: list[str] = []
        self.refused = 0
        self.applied = 0

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """Fold one message in; return None when accepted, else why it was refused."""
        self.applied += 1
        if key is None:
            return self._refuse("a rules message without a key: the key must be the rule id")
        try:
            rule_id = key.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(f"key {key[:60]!r}: must be the rule id in UTF-8")
        if value is None:  # a tombstone: deleting a rule that is not there is no error
            self._latest.pop(rule_id, None)
            if self._rules.pop(rule_id, None) is not None:
                self._ruleset = None
            return None
        self._latest[rule_id] = value
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

    @property
    def ruleset(self) -> RuleSet:
        """The rules in force (computed once per change: RuleSet.of sorts and hashes)."""
        if self._ruleset is None:
            self._ruleset = RuleSet.of(self._rules.values())
        return self._ruleset

    @property
    def latest(self) -> Mapping[str, bytes]:
        """The latest value per rule id on the topic, accepted or refused."""
        return MappingProxyType(self._latest)

    def _kept(self, rule_id: str) -> str:
        if rule_id in self._rules:
            return f"; the rule {rule_id!r} in force stays in force"
        return f"; no rule {rule_id!r} is in force"

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
