"""RuleBook: the fold of rules-topic messages into the rules in force (no Kafka)."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.rules import EMPTY_RULES, Queue, QueueBudget, Rule, RuleSet, rule_to_json
from streams.core.rulebook import MAX_REFUSALS, RuleBook


def rule(rule_id: str, **fields: Any) -> Rule:
    return Rule.model_validate(
        {"id": rule_id, "trigger": {"dwell_seconds": 30}, "message": {"text": "Hi!"}, **fields}
    )


def message(r: Rule) -> tuple[bytes, bytes]:
    return r.id.encode(), rule_to_json(r)


SALES_20 = b'{"queue":"sales","budget":{"invitations":20,"per":"minute"}}'
SALES_5 = b'{"queue":"sales","budget":{"invitations":5,"per":"hour"}}'


def budget(invitations: int, per: str) -> Queue:
    return Queue(budget=QueueBudget.model_validate({"invitations": invitations, "per": per}))


def test_an_empty_book_has_no_rules() -> None:
    assert RuleBook().ruleset == EMPTY_RULES


def test_a_rule_is_accepted_and_in_force() -> None:
    book = RuleBook()
    assert book.apply(*message(rule("a"))) is None
    assert book.ruleset == RuleSet.of([rule("a")])
    assert book.latest == {"a": rule_to_json(rule("a"))}


def test_a_newer_value_replaces_the_rule() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    book.apply(*message(rule("b")))
    assert book.apply(*message(rule("a", priority=5))) is None
    assert book.ruleset.get("a") == rule("a", priority=5)
    assert [r.id for r in book.ruleset] == ["a", "b"]


def test_a_tombstone_removes_the_rule() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    book.apply(*message(rule("b")))
    assert book.apply(b"a", None) is None
    assert book.ruleset == RuleSet.of([rule("b")])
    assert "a" not in book.latest


def test_a_tombstone_for_an_unknown_rule_is_harmless() -> None:
    book = RuleBook()
    assert book.apply(b"ghost", None) is None
    assert book.ruleset == EMPTY_RULES
    assert book.refusals == []


def test_an_invalid_rule_is_refused_naming_the_field_and_the_old_one_stays() -> None:
    book = RuleBook()
    book.apply(*message(rule("a", priority=3)))
    bad = orjson.dumps({"id": "a", "trigger": {"dwell_seconds": 0}, "message": {"text": "x"}})

    reason = book.apply(b"a", bad)

    assert reason is not None
    assert "trigger.dwell_seconds" in reason
    assert "stays" in reason
    assert book.ruleset.get("a") == rule("a", priority=3)
    assert book.refusals == [reason]
    assert book.latest["a"] == bad  # what compaction keeps, so apply_rules will overwrite it


def test_a_value_that_is_not_json_is_refused() -> None:
    book = RuleBook()
    reason = book.apply(b"a", b"{not json")
    assert reason is not None and "not valid JSON" in reason
    assert book.ruleset == EMPTY_RULES


def test_a_rule_whose_id_differs_from_its_key_is_refused() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    reason = book.apply(b"a", rule_to_json(rule("b")))
    assert reason is not None
    assert "rule.id is 'b'" in reason and "key 'a'" in reason
    assert book.ruleset == RuleSet.of([rule("a")])


def test_a_message_without_a_key_is_refused() -> None:
    book = RuleBook()
    reason = book.apply(None, rule_to_json(rule("a")))
    assert reason is not None and "key" in reason
    assert book.ruleset == EMPTY_RULES


def test_a_key_that_is_not_utf8_is_refused() -> None:
    reason = RuleBook().apply(b"\xff\xfe", rule_to_json(rule("a")))
    assert reason is not None and "UTF-8" in reason


def test_the_version_changes_with_each_change_and_only_then() -> None:
    book = RuleBook()
    versions = [book.ruleset.version]
    book.apply(*message(rule("a")))
    versions.append(book.ruleset.version)
    book.apply(*message(rule("a")))  # the same rule again
    assert book.ruleset.version == versions[-1]
    book.apply(*message(rule("a", priority=1)))
    versions.append(book.ruleset.version)
    book.apply(b"a", None)
    assert len(set(versions)) == 3
    assert book.ruleset.version == versions[0]


def test_the_ruleset_is_computed_once_per_change() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    first = book.ruleset
    assert book.ruleset is first
    book.apply(b"a", b"[]")  # refused: nothing changes
    assert book.ruleset is first
    book.apply(*message(rule("b")))
    assert book.ruleset is not first


def test_refusals_are_bounded_but_all_counted() -> None:
    book = RuleBook()
    for n in range(MAX_REFUSALS + 5):
        book.apply(f"r{n}".encode(), b"null")
    assert len(book.refusals) == MAX_REFUSALS
    assert book.refused == MAX_REFUSALS + 5
    assert "'r104'" in book.refusals[-1]


def test_a_queue_message_sets_the_queue_budget_beside_the_rules() -> None:
    book = RuleBook()
    book.apply(*message(rule("a", queue="sales")))

    assert book.apply(b"queue:sales", SALES_20) is None

    assert book.ruleset == RuleSet.of([rule("a", queue="sales")], {"sales": budget(20, "minute")})
    assert book.latest == {"a": rule_to_json(rule("a", queue="sales")), "queue:sales": SALES_20}


def test_a_newer_queue_message_replaces_the_budget() -> None:
    book = RuleBook()
    book.apply(b"queue:sales", SALES_20)
    assert book.apply(b"queue:sales", SALES_5) is None
    assert dict(book.ruleset.queues) == {"sales": budget(5, "hour")}


def test_an_invalid_queue_message_is_refused_naming_the_field_and_the_budget_stays() -> None:
    book = RuleBook()
    book.apply(b"queue:sales", SALES_20)
    bad = b'{"queue":"sales","budget":{"invitations":0,"per":"minute"}}'

    reason = book.apply(b"queue:sales", bad)

    assert reason is not None
    assert "key 'queue:sales'" in reason and "queue.budget.invitations" in reason
    assert "stay in force" in reason
    assert dict(book.ruleset.queues) == {"sales": budget(20, "minute")}
    assert book.latest["queue:sales"] == bad  # what compaction keeps: apply overwrites it


def test_a_misspelt_queue_field_is_refused_naming_it() -> None:
    reason = RuleBook().apply(b"queue:sales", b'{"queue":"sales","budgte":{}}')
    assert reason is not None and "queue.budgte" in reason


def test_a_queue_message_whose_name_differs_from_its_key_is_refused() -> None:
    book = RuleBook()
    book.apply(b"queue:sales", SALES_20)

    reason = book.apply(
        b"queue:sales", b'{"queue":"support","budget":{"invitations":1,"per":"hour"}}'
    )

    assert reason is not None
    assert "queue is 'support'" in reason and "key 'queue:sales'" in reason
    assert dict(book.ruleset.queues) == {"sales": budget(20, "minute")}


def test_a_queue_tombstone_removes_the_budget_and_leaves_the_rules() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    book.apply(b"queue:sales", SALES_20)

    assert book.apply(b"queue:sales", None) is None

    assert book.ruleset == RuleSet.of([rule("a")])
    assert "queue:sales" not in book.latest


def test_the_version_changes_with_the_queue_settings_and_comes_back_without_them() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    without = book.ruleset.version
    book.apply(b"queue:sales", SALES_20)
    with_20 = book.ruleset.version
    book.apply(b"queue:sales", SALES_20)  # the same settings again
    assert book.ruleset.version == with_20
    book.apply(b"queue:sales", SALES_5)
    with_5 = book.ruleset.version
    book.apply(b"queue:sales", None)

    assert len({without, with_20, with_5}) == 3
    assert book.ruleset.version == without


def test_a_queue_without_settings_is_as_if_never_named() -> None:
    book = RuleBook()
    book.apply(*message(rule("a")))
    assert book.apply(b"queue:sales", b'{"queue":"sales"}') is None
    assert book.ruleset == RuleSet.of([rule("a")])
