"""Capacity records and the rules' capacity clause: what is accepted, and errors that name
the field."""

from __future__ import annotations

import pytest

from schemas.capacity import capacity_to_json, parse_capacity
from schemas.errors import InvalidCapacity, InvalidRules
from schemas.rules import CapacityNeed, RuleSet, load_rules, parse_rule_message, rule_to_json

RECORD = (
    b'{"queue": "sales", "agents_online": 3, "free_slots": 1, "expected_wait_s": 12.5,'
    b' "measured_at": "2026-12-01T18:00:00+09:00"}'
)


def problems(raw: bytes) -> list[tuple[str, str]]:
    with pytest.raises(InvalidCapacity) as caught:
        parse_capacity(raw)
    return caught.value.problems


def test_a_record_parses_with_either_form_of_instant() -> None:
    record = parse_capacity(RECORD)
    assert (record.queue, record.agents_online, record.free_slots) == ("sales", 3, 1)
    assert record.measured_at == 1_796_115_600_000
    again = parse_capacity(capacity_to_json(record))
    assert again == record
    unestimated = parse_capacity(
        b'{"queue": "q", "agents_online": 0, "free_slots": 0, "measured_at": 1796115600000}'
    )
    assert unestimated.expected_wait_s is None


def test_bad_fields_are_named_with_what_is_accepted() -> None:
    bad = (
        b'{"queue": "", "agents_online": -1, "free_slots": "2", "expected_wait_s": -3,'
        b' "measured_at": "2026-12-01T09:00:00", "agents": 1}'
    )
    found = dict(problems(bad))
    assert set(found) == {
        "queue", "agents_online", "free_slots", "expected_wait_s", "measured_at", "agents"
    }  # fmt: skip
    assert found["agents_online"] == "must be at least 0, got -1"
    assert found["free_slots"].startswith("must be an integer")
    assert "UTC offset" in found["measured_at"]
    assert found["agents"].startswith("is not a known field; accepted: queue,")


def test_a_record_that_is_not_an_object_or_not_json_is_named() -> None:
    assert problems(b"[1]") == [("", "must be a JSON object, got a list")]
    assert problems(b"{")[0][1].startswith("not valid JSON")
    assert dict(problems(b'{"queue": "q", "free_slots": 1, "measured_at": 1}')) == {
        "agents_online": "is required"
    }


def test_a_rule_takes_a_capacity_clause_with_defaults() -> None:
    ruleset = load_rules(
        """
        rules:
          - id: pricing
            trigger: {dwell_seconds: 30}
            message: {text: Hi}
            queue: sales
            capacity: {}
          - id: strict
            trigger: {dwell_seconds: 30}
            message: {text: Hi}
            capacity: {min_free: 2, max_wait_s: 90, min_agents: 1}
        """
    )
    pricing, strict = ruleset.get("pricing"), ruleset.get("strict")
    assert pricing is not None and pricing.capacity == CapacityNeed(min_free=1)
    assert strict is not None and strict.capacity == CapacityNeed(
        min_free=2, max_wait_s=90, min_agents=1
    )
    assert parse_rule_message(rule_to_json(pricing)) == pricing
    assert rule_to_json(pricing).endswith(b'"capacity":{}}')


def test_rules_without_the_clause_keep_their_version() -> None:
    text = "rules: [{id: a, trigger: {dwell_seconds: 3}, message: {text: Hi}}]"
    assert load_rules(text).version == RuleSet.of(load_rules(text).rules).version
    with_clause = text.replace("message:", "capacity: {}, message:")
    assert load_rules(with_clause).version != load_rules(text).version


def test_a_bad_clause_names_the_rule_and_the_field() -> None:
    text = """
    rules:
      - id: pricing
        trigger: {dwell_seconds: 30}
        message: {text: Hi}
        capacity: {min_free: -1, max_wait: 5}
    """
    with pytest.raises(InvalidRules) as caught:
        load_rules(text)
    found = dict(caught.value.problems)
    assert found["rules[0] (id=pricing).capacity.min_free"] == "must be at least 0, got -1"
    assert "did you mean 'max_wait_s'" in found["rules[0] (id=pricing).capacity.max_wait"]
