"""Drafts: the CLI's validation, reshaped for the page."""

from __future__ import annotations

import pytest

from schemas.rules import load_rules
from streams.console.drafts import (
    DraftError,
    in_words,
    parse_draft,
    queues_in_words,
    queues_json,
    rendered,
    rules_json,
    rules_yaml,
)

RULE = {
    "id": "pricing",
    "location": {"include": ["*/pricing*"], "exclude": ["*/pricing/faq"]},
    "trigger": {"dwell_seconds": 30, "journey": ["*/products/*", "*/pricing*"]},
    "message": {"text": "Hi {first_name|there}!", "locales": {"de": "Hallo {first_name|du}!"}},
}


def test_json_and_yaml_drafts_give_the_same_set_as_the_cli() -> None:
    from_json = parse_draft({"rules": [RULE]})
    yaml_text = rules_yaml(rules_json(from_json))
    from_yaml = parse_draft({"yaml": yaml_text})
    assert from_json.version == from_yaml.version == load_rules(yaml_text).version
    assert rules_json(from_json) == [RULE]  # defaults left out, as on the rules topic


def test_errors_name_the_rule_its_index_and_the_field() -> None:
    bad = {**RULE, "id": "pricing", "trigger": {"dwell_seconds": 0}}
    with pytest.raises(DraftError) as caught:
        parse_draft({"rules": [dict(RULE, id="other"), bad]})
    assert caught.value.errors == [
        {
            "rule_id": "pricing",
            "index": 1,
            "path": "trigger.dwell_seconds",
            "reason": "must be greater than 0, got 0",
        }
    ]


def test_a_misspelt_field_and_a_duplicate_id_are_errors_at_their_rule() -> None:
    with pytest.raises(DraftError) as caught:
        parse_draft({"rules": [dict(RULE, triger={})]})
    (error,) = caught.value.errors
    assert (error["index"], error["path"]) == (0, "triger")
    assert "did you mean 'trigger'" in error["reason"]
    with pytest.raises(DraftError) as caught:
        parse_draft({"rules": [RULE, RULE]})
    assert caught.value.errors[0]["index"] == 1
    assert caught.value.errors[0]["path"] == "id"


@pytest.mark.parametrize("body", [[], {"rules": "x"}, {"yaml": "rules: ["}, {}])
def test_a_draft_that_is_no_rule_set_says_so(body: object) -> None:
    with pytest.raises(DraftError) as caught:
        parse_draft(body)
    assert caught.value.errors[0]["rule_id"] is None
    assert caught.value.errors[0]["reason"]


def test_messages_render_for_the_sample_visitor() -> None:
    ruleset = parse_draft({"rules": [RULE]})
    assert rendered(ruleset, {"first_name": "Kai"}) == {
        "pricing": {"text": "Hi Kai!", "locales": {"de": "Hallo Kai!"}}
    }
    assert rendered(ruleset, {})["pricing"]["text"] == "Hi there!"


def test_a_rule_in_words() -> None:
    (rule,) = parse_draft({"rules": [RULE]})
    assert in_words(rule) == {
        "location": "on */pricing*; except */pricing/faq",
        "trigger": "after 30 s on the page and after visiting */products/* then */pricing*",
    }


def test_a_journey_object_in_words() -> None:
    journey = {
        "steps": ["*/products/*", "*/pricing*"],
        "within": 300,
        "without": ["*/support*", "*/help*"],
        "min_views": [{"glob": "*/products/*", "at_least": 3}, {"glob": "*/cart", "at_least": 1}],
        "returned": True,
    }
    (rule,) = parse_draft({"rules": [{**RULE, "trigger": {"journey": journey}}]})
    assert in_words(rule)["trigger"] == (
        "after visiting */products/* then */pricing* within 300 s, without */support* or "
        "*/help* in between and after 3 views of */products/* and after 1 view of */cart "
        "and on coming back to a page seen earlier in the session"
    )


def test_a_capacity_clause_in_words() -> None:
    clause = {"min_free": 2, "max_wait_s": 90, "min_agents": 1}
    (rule,) = parse_draft({"rules": [{**RULE, "queue": "sales", "capacity": clause}]})
    assert in_words(rule)["trigger"].endswith(
        " and if sales has 2 free slots, 1 agent online, a wait of at most 90 s"
    )
    (rule,) = parse_draft({"rules": [{**RULE, "capacity": {}}]})
    assert in_words(rule)["trigger"].endswith(" and if default has 1 free slot")


SALES = {"budget": {"invitations": 20, "per": "minute"}}


def test_a_draft_with_queues_round_trips_through_yaml() -> None:
    draft = {"rules": [{**RULE, "queue": "sales"}], "queues": {"sales": SALES}}
    ruleset = parse_draft(draft)
    assert queues_json(ruleset) == {"sales": SALES}
    yaml_text = rules_yaml(rules_json(ruleset), queues_json(ruleset))
    assert yaml_text.startswith("queues:\n  sales:\n    budget:\n      invitations: 20\n")
    from_yaml = parse_draft({"yaml": yaml_text})
    assert from_yaml.version == ruleset.version == load_rules(yaml_text).version
    assert queues_in_words(from_yaml) == {"sales": "at most 20 invitations per minute"}


def test_a_draft_without_queues_keeps_its_version_and_its_yaml() -> None:
    ruleset = parse_draft({"rules": [RULE], "queues": None})
    assert ruleset.version == parse_draft({"rules": [RULE]}).version
    assert queues_json(ruleset) == {}
    assert rules_yaml(rules_json(ruleset), {}).startswith("rules:\n")
    assert queues_in_words(ruleset) == {"default": "no budget"}


@pytest.mark.parametrize(
    ("queues", "path", "reason"),
    [
        ({"sales": {"budget": {"invitations": 0, "per": "minute"}}},
         "queues.sales.budget.invitations", "must be at least 1, got 0"),
        ({"sales": {"budget": {"invitations": 5, "per": "day"}}},
         "queues.sales.budget.per", "must be 'minute' or 'hour', got 'day'"),
        ({"sales": {"budget": {"per": "hour"}}}, "queues.sales.budget.invitations", None),
        ([], "queues", None),
    ],
)  # fmt: skip
def test_a_bad_budget_is_refused_naming_the_field(
    queues: object, path: str, reason: str | None
) -> None:
    with pytest.raises(DraftError) as caught:
        parse_draft({"rules": [RULE], "queues": queues})
    (error,) = caught.value.errors
    assert (error["rule_id"], error["index"], error["path"]) == (None, None, path)
    assert reason is None or error["reason"] == reason


def test_a_budget_in_words() -> None:
    one = parse_draft(
        {"rules": [], "queues": {"night": {"budget": {"invitations": 1, "per": "hour"}}}}
    )
    assert queues_in_words(one) == {"night": "at most 1 invitation per hour"}
