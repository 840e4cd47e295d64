"""The journey trigger: the list form as it always was, the object form, and its errors."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
import yaml

from schemas.errors import InvalidRules
from schemas.rules import JourneyPattern, ViewCount, load_rules, parse_rule_message, rule_to_json

WHERE = "rules[0] (id=x).trigger.journey"


def rule(journey: Any) -> dict[str, Any]:
    return {"id": "x", "trigger": {"journey": journey}, "message": {"text": "Hi"}}


def problems_of(journey: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRules) as caught:
        load_rules(json.dumps([rule(journey)]))
    return caught.value.problems


def the_problem(journey: Any) -> tuple[str, str]:
    [problem] = problems_of(journey)
    return problem


def test_the_list_form_is_kept_as_a_list_and_keeps_its_version() -> None:
    rules = load_rules(json.dumps([rule(["*/products/*", "*/pricing"])]))

    assert rules.rules[0].trigger.journey == ("*/products/*", "*/pricing")
    assert rules.version == "f777bf9efde0"  # as before the object form existed


def test_the_object_form_loads_every_clause_from_yaml() -> None:
    text = """
    rules:
      - id: x
        message: {text: Hi}
        trigger:
          journey:
            steps: ["*/products/*", "*/pricing*"]
            within: 300
            without: ["*/support*"]
            min_views: [{glob: "*/products/*", at_least: 3}]
            returned: true
    """
    [r] = load_rules(text).rules

    assert r.trigger.journey == JourneyPattern(
        steps=("*/products/*", "*/pricing*"),
        within=300,
        without=("*/support*",),
        min_views=(ViewCount(glob="*/products/*", at_least=3),),
        returned=True,
    )


@pytest.mark.parametrize(
    "journey",
    [
        ["*/a", "*/b"],
        {"steps": ["*/a"]},
        {"steps": ["*/a", "*/b"], "within": 60},
        {"min_views": [{"glob": "*/a", "at_least": 2}, {"glob": "*/b", "at_least": 1}]},
        {"returned": True},
    ],
)
def test_a_journey_comes_back_from_the_rules_topic_as_it_was_given(journey: Any) -> None:
    [r] = load_rules(json.dumps([rule(journey)])).rules

    assert orjson.loads(rule_to_json(r))["trigger"]["journey"] == journey
    assert parse_rule_message(rule_to_json(r)) == r


def test_the_two_forms_are_different_rules_versions() -> None:
    # Same meaning, but the version names what was written; the console shows the form.
    listed = load_rules(json.dumps([rule(["*/a"])])).version
    assert load_rules(json.dumps([rule({"steps": ["*/a"]})])).version != listed


@pytest.mark.parametrize(
    ("journey", "field", "says"),
    [
        ({"steps": ["*/a", "*/b"], "within": 0}, ".within", "must be greater than 0, got 0"),
        ({"steps": ["*/a", "*/b"], "within": 2.5}, ".within", "must be a whole number"),
        ({"steps": ["*/a"], "within": 60}, ".within", "needs at least two steps, got 1"),
        ({"min_views": [{"glob": "*/a", "at_least": 1}], "within": 9}, ".within", "got 0"),
        ({"steps": ["*/a"], "without": ["*/b"]}, ".without", "needs at least two steps"),
        ({"steps": ["*/a", "*/b"], "without": []}, ".without", "must not be empty"),
        ({"steps": []}, ".steps", "must not be empty"),
        ({"steps": ["*/a", ""]}, ".steps[1]", "must not be empty"),
        ({"min_views": []}, ".min_views", "must not be empty"),
        ({"min_views": [{"glob": "*/a", "at_least": 0}]}, ".min_views[0].at_least", "at least 1"),
        ({"min_views": [{"glob": "*/a", "at_least": 101}]}, ".min_views[0].at_least", "at most"),
        ({"min_views": [{"glob": "*/a"}]}, ".min_views[0].at_least", "is required"),
        ({"returned": False}, ".returned", "must be true"),
        ({"returned": "yes"}, ".returned", "must be true or false"),
        ({}, "", "needs at least one clause: steps, min_views, returned"),
        ({"within": 60}, ".within", "needs at least two steps, got 0"),
        ("*/a", "", "must be a list of globs or an object with steps"),
        ([], "", "must not be empty"),
        (["*/a", ""], "[1]", "must not be empty"),
    ],
)
def test_a_bad_journey_is_named_down_to_the_field(journey: Any, field: str, says: str) -> None:
    paths = dict(problems_of(journey))

    assert WHERE + field in paths, paths
    assert says in paths[WHERE + field]


def test_the_contracts_error_example() -> None:
    assert the_problem({"steps": ["*/a", "*/b"], "within": 0}) == (
        WHERE + ".within",
        "must be greater than 0, got 0",
    )


@pytest.mark.parametrize(
    ("journey", "field", "accepted"),
    [
        ({"steps": ["*/a"], "withn": 3}, ".withn", "within"),
        ({"min_views": [{"glob": "*/a", "at_leats": 2}]}, ".min_views[0].at_leats", "at_least"),
    ],
)
def test_an_unknown_key_in_a_journey_is_named_with_a_suggestion(
    journey: Any, field: str, accepted: str
) -> None:
    message = dict(problems_of(journey))[WHERE + field]

    assert message.startswith(f"is not a known field (did you mean {accepted!r}?)")


def test_a_bad_item_of_min_views_is_the_only_problem_named() -> None:
    # Not also "min_views: must not be empty" because no item validated.
    assert the_problem({"min_views": [{"glob": "*/a", "at_least": 0}]})[0] == (
        WHERE + ".min_views[0].at_least"
    )


def test_a_glob_starting_with_a_star_must_be_quoted_in_yaml() -> None:
    # YAML reads *x as an alias: the error is YAML's, before any rule is looked at.
    with pytest.raises((InvalidRules, yaml.YAMLError)):
        load_rules("rules: [{id: x, message: {text: Hi}, trigger: {journey: {steps: [*/a]}}}]")
