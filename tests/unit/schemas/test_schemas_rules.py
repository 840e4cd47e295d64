"""Rules: the contract's example loads; every bad field is named with its rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidRules
from schemas.rules import (
    EMPTY_RULES,
    PredicateOps,
    Rule,
    RuleSet,
    load_rules,
    load_rules_file,
    parse_rule_message,
    rule_to_json,
)

CONTRACT_EXAMPLE = """
rules:
  - id: pricing-hesitation          # unique, [a-z0-9-]+
    enabled: true
    priority: 10                    # higher wins when several fire at once
    audience:                       # every predicate must hold
      authenticated: true           # plain value: equality
      visits: {gte: 2}
      country: {in: [JP, US]}
      plan: {not_in: [enterprise]}
    location:
      include: ["https://shop.example/pricing*"]   # globs on the URL without query and fragment
      exclude: ["*/thank-you"]
    timeframe:
      timezone: Asia/Tokyo
      start_date: 2026-12-01        # inclusive, local dates
      end_date: 2026-12-31
      days: [mon, tue, wed, thu, fri]
      hours: "09:00-18:00"          # local, start inclusive, end exclusive
    trigger:                        # at least one; all that are given must hold
      dwell_seconds: 30             # on the current page
      session_seconds: 120
      pages_in_session: 3           # at least
      journey: ["*/products/*", "*/pricing"]  # in this order, gaps allowed
      scroll_pct: 50                # at least, on the current page
      event: exit_intent            # or a custom event's name, on the current page
    message:
      text: "Hi {first_name|there}, any questions about our plans?"
      locales: {ja: "{first_name|}さん、プランについてご質問はありますか？"}
    queue: sales
    frequency:
      per_session: 1                # default 1
      per_day: 2                    # days in the rule's time zone (UTC without one)
      after_decline_days: 7
    holdout_pct: 10                 # control group, stable per visitor and rule
"""


def rule(rule_id: str = "pricing-hesitation", **fields: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "trigger": {"dwell_seconds": 30},
        "message": {"text": "Hi!"},
        **fields,
    }


def with_part(part: str, **fields: Any) -> dict[str, Any]:
    """A rule whose `part` section (trigger, timeframe, ...) is `fields`."""
    return {**rule(), part: fields}


def problems_of(*rules: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRules) as caught:
        load_rules(json.dumps({"rules": list(rules)}))
    return caught.value.problems


def the_problem(*rules: dict[str, Any]) -> tuple[str, str]:
    [problem] = problems_of(*rules)
    return problem


def test_the_contract_example_loads_with_every_field() -> None:
    [r] = load_rules(CONTRACT_EXAMPLE).rules
    assert (r.id, r.enabled, r.priority, r.queue, r.holdout_pct) == (
        "pricing-hesitation",
        True,
        10,
        "sales",
        10,
    )
    assert r.audience["authenticated"] is True
    assert r.audience["visits"] == PredicateOps(gte=2)
    assert r.audience["country"] == PredicateOps.model_validate({"in": ["JP", "US"]})
    assert r.location.exclude == ("*/thank-you",)
    assert r.timeframe is not None
    assert r.timeframe.hours == (9 * 60, 18 * 60)
    assert r.timeframe.weekdays == frozenset(range(5))
    assert str(r.timeframe.start_date) == "2026-12-01"
    assert r.trigger.journey == ("*/products/*", "*/pricing")
    assert r.message.locales["ja"].startswith("{first_name|}")
    assert (r.frequency.per_session, r.frequency.per_day, r.frequency.after_decline_days) == (
        1,
        2,
        7,
    )


def test_defaults_fill_a_minimal_rule() -> None:
    [r] = load_rules(json.dumps([rule()])).rules
    assert (r.enabled, r.priority, r.queue, r.holdout_pct, r.timeframe) == (
        True,
        0,
        "default",
        0,
        None,
    )
    assert (r.frequency.per_session, r.frequency.per_day) == (1, None)
    assert r.location.include == ()


def test_json_and_yaml_give_the_same_rule_set() -> None:
    from_yaml = load_rules(CONTRACT_EXAMPLE)
    from_json = load_rules(json.dumps(yaml.safe_load(CONTRACT_EXAMPLE), default=str))
    assert from_json == from_yaml


def test_a_bare_list_of_rules_is_accepted() -> None:
    assert [r.id for r in load_rules("- " + json.dumps(rule()))] == ["pricing-hesitation"]


def test_rules_are_sorted_by_priority_then_id() -> None:
    rs = load_rules(json.dumps([rule("b"), rule("c", priority=5), rule("a")]))
    assert [r.id for r in rs] == ["c", "a", "b"]


def test_version_ignores_input_order_and_spelled_out_defaults() -> None:
    one = load_rules(json.dumps([rule("a"), rule("b", priority=3)]))
    other = load_rules(
        json.dumps([rule("b", priority=3, enabled=True), rule("a", queue="default")])
    )
    assert one.version == other.version
    assert len(one.version) == 12


def test_version_changes_with_content() -> None:
    assert (
        load_rules(json.dumps([rule()])).version
        != load_rules(json.dumps([rule(priority=1)])).version
    )


def test_version_is_stable_across_runs() -> None:
    # A literal: the version must not depend on the machine, the process or dict order.
    assert load_rules(json.dumps([rule()])).version == "588cc18e5483"


def test_versions_of_rules_without_a_mode_stay_as_they_were() -> None:
    # Literals computed before rules had a mode: adding the field must not change them.
    assert load_rules(CONTRACT_EXAMPLE).version == "b8473d539160"
    assert load_rules(json.dumps([rule(mode="live")])).version == "588cc18e5483"
    assert load_rules(json.dumps([rule(mode="shadow")])).version != "588cc18e5483"


def test_mode_is_live_unless_shadow_is_asked_for() -> None:
    [live] = load_rules(json.dumps([rule()])).rules
    [shadow] = load_rules(json.dumps([rule(mode="shadow")])).rules
    assert (live.mode, shadow.mode) == ("live", "shadow")
    # Left out at its default on the rules topic, so older rules' messages are unchanged.
    assert "mode" not in orjson.loads(rule_to_json(live))
    assert orjson.loads(rule_to_json(shadow))["mode"] == "shadow"
    assert parse_rule_message(rule_to_json(shadow)) == shadow


def test_unknown_mode_is_named() -> None:
    assert the_problem(rule(mode="dry-run")) == (
        "rules[0] (id=pricing-hesitation).mode",
        "must be 'live' or 'shadow', got 'dry-run'",
    )


def test_rule_set_updates_by_id() -> None:
    rs = RuleSet.of([Rule.model_validate(rule("a")), Rule.model_validate(rule("b"))])
    replaced = rs.with_rule(Rule.model_validate(rule("a", priority=9)))
    assert [(r.id, r.priority) for r in replaced] == [("a", 9), ("b", 0)]
    assert [r.id for r in replaced.without("a")] == ["b"]
    assert replaced.without("b").without("a").version == EMPTY_RULES.version
    assert rs.get("b") is not None and rs.get("zz") is None
    assert repr(rs) == f"RuleSet(version={rs.version!r}, ids=['a', 'b'])"


def test_duplicate_ids_are_refused_naming_both() -> None:
    assert the_problem(rule("a"), rule("b"), rule("a")) == (
        "rules[2] (id=a).id",
        "repeats the id of rules[0]",
    )
    with pytest.raises(InvalidRules, match="repeats"):
        RuleSet.of([Rule.model_validate(rule("a"))] * 2)


def test_error_names_the_rule_index_id_and_field() -> None:
    with pytest.raises(InvalidRules) as caught:
        load_rules(
            json.dumps([rule("a"), rule("b"), with_part("trigger", dwell_seconds=0)]),
            source="rules.yaml",
        )
    assert str(caught.value) == (
        "rules.yaml: rules[2] (id=pricing-hesitation).trigger.dwell_seconds: "
        "must be greater than 0, got 0"
    )


@pytest.mark.parametrize("bad_id", ["Pricing", "has space", "under_score", ""])
def test_bad_rule_id_says_what_is_accepted(bad_id: str) -> None:
    field, message = the_problem(rule(bad_id))
    assert field.endswith(".id")
    assert "lowercase letters, digits and '-'" in message or message == "must not be empty"


@pytest.mark.parametrize(
    ("fields", "where", "key"),
    [
        ({"triger": {"dwell_seconds": 3}}, "", "triger"),
        ({"trigger": {"dwel_seconds": 3}}, ".trigger", "dwel_seconds"),
        ({"frequency": {"per_dya": 1}}, ".frequency", "per_dya"),
        ({"location": {"exclud": []}}, ".location", "exclud"),
        ({"timeframe": {"tz": "UTC"}}, ".timeframe", "tz"),
        ({"message": {"text": "x", "local": {}}}, ".message", "local"),
    ],
)
def test_unknown_key_is_named_with_a_suggestion(
    fields: dict[str, Any], where: str, key: str
) -> None:
    data = {k: v for k, v in rule(**fields).items() if not (k == "trigger" and "triger" in fields)}
    paths = dict(problems_of(data))
    message = paths[f"rules[0] (id=pricing-hesitation){where}.{key}"]
    assert message.startswith("is not a known field")
    assert "accepted:" in message


def test_unknown_top_level_key_is_named() -> None:
    with pytest.raises(InvalidRules) as caught:
        load_rules(json.dumps({"rules": [], "version": 2}))
    assert caught.value.problems[0][0] == "version"


@pytest.mark.parametrize("missing", ["id", "trigger", "message"])
def test_required_field_missing_is_named(missing: str) -> None:
    data = rule()
    del data[missing]
    assert (
        f"rules[0]{'' if missing == 'id' else ' (id=pricing-hesitation)'}.{missing}",
        "is required",
    ) in problems_of(data)


@pytest.mark.parametrize(
    "predicate",
    [
        True,
        "JP",
        3,
        2.5,
        None,
        {"in": ["JP", "US"]},
        {"not_in": ["enterprise"]},
        {"gte": 2, "lt": 10},
        {"gt": 0.5, "lte": 1},
        {"exists": False},
        {"contains": "beta"},
    ],
)
def test_every_predicate_form_is_accepted(predicate: Any) -> None:
    [r] = load_rules(json.dumps([rule(audience={"attr": predicate})])).rules
    assert orjson.loads(rule_to_json(r))["audience"]["attr"] == predicate


@pytest.mark.parametrize(
    "frequency",
    [{}, {"per_session": None}, {"per_session": None, "per_day": None}, {"per_day": 3}],
)
def test_a_rule_comes_back_from_the_rules_topic_as_it_was_given(frequency: Any) -> None:
    # per_session defaults to 1; null means no limit, and must stay null on the topic.
    [r] = load_rules(json.dumps([rule(frequency=frequency)])).rules
    assert parse_rule_message(rule_to_json(r)) == r


def test_unknown_operator_is_named_with_the_accepted_ones() -> None:
    assert the_problem(rule(audience={"visits": {"gtee": 2}})) == (
        "rules[0] (id=pricing-hesitation).audience.visits",
        "unknown operator 'gtee'; accepted: in, not_in, gte, gt, lte, lt, exists, contains",
    )


@pytest.mark.parametrize(
    ("predicate", "field", "says"),
    [
        ({}, "audience.visits", "needs at least one operator"),
        ([2], "audience.visits", "must be a plain value"),
        ({"gte": "2"}, "audience.visits.gte", "must be a number, got a string '2'"),
        ({"gte": True}, "audience.visits.gte", "must be a number, got a boolean true"),
        ({"in": []}, "audience.visits.in", "must not be empty"),
        ({"in": "JP"}, "audience.visits.in", "must be a list"),
        ({"exists": "yes"}, "audience.visits.exists", "must be true or false"),
    ],
)
def test_bad_predicate_names_the_attribute(predicate: Any, field: str, says: str) -> None:
    path, message = the_problem(rule(audience={"visits": predicate}))
    assert path == f"rules[0] (id=pricing-hesitation).{field}"
    assert says in message


def test_a_yaml_date_as_a_plain_value_asks_for_quotes() -> None:
    with pytest.raises(InvalidRules, match=r"audience\.since: .*quote dates"):
        load_rules(
            "rules:\n- id: a\n  audience: {since: 2026-01-01}\n"
            "  trigger: {event: x}\n  message: {text: hi}\n"
        )


def test_timezone_is_checked_and_named() -> None:
    assert the_problem(with_part("timeframe", timezone="Asia/Tokio")) == (
        "rules[0] (id=pricing-hesitation).timeframe.timezone",
        "unknown time zone 'Asia/Tokio'; use an IANA name such as 'Asia/Tokyo' or 'UTC'",
    )


def test_end_date_before_start_date_is_refused() -> None:
    field, message = the_problem(
        with_part("timeframe", start_date="2026-12-01", end_date="2026-11-30")
    )
    assert field.endswith(".timeframe.end_date")
    assert "before start_date 2026-12-01" in message


def test_same_start_and_end_date_is_one_day() -> None:
    load_rules(json.dumps([with_part("timeframe", start_date="2026-12-01", end_date="2026-12-01")]))


@pytest.mark.parametrize("bad", ["2026-02-30", "tomorrow", 20261201])
def test_bad_date_is_named(bad: Any) -> None:
    field, _ = the_problem(with_part("timeframe", start_date=bad))
    assert field.endswith(".timeframe.start_date")


@pytest.mark.parametrize(
    ("days", "says"),
    [
        (["mon", "mon"], "lists mon more than once"),
        (["monday"], "'mon'"),
        ([], "must not be empty"),
    ],
)
def test_bad_days_are_named(days: list[str], says: str) -> None:
    field, message = the_problem(with_part("timeframe", days=days))
    assert field.startswith("rules[0] (id=pricing-hesitation).timeframe.days")
    assert says in message


def test_days_are_kept_in_week_order() -> None:
    [r] = load_rules(json.dumps([with_part("timeframe", days=["sun", "mon"])])).rules
    assert r.timeframe is not None and r.timeframe.days == ("mon", "sun")


@pytest.mark.parametrize(
    ("hours", "minutes"),
    [("09:00-18:00", (540, 1080)), ("22:00-02:00", (1320, 120)), ("00:00-24:00", (0, 1440))],
)
def test_hours_are_parsed_into_minutes_of_day(hours: str, minutes: tuple[int, int]) -> None:
    [r] = load_rules(json.dumps([with_part("timeframe", hours=hours)])).rules
    assert r.timeframe is not None and r.timeframe.hours == minutes
    assert orjson.loads(rule_to_json(r))["timeframe"]["hours"] == hours


@pytest.mark.parametrize(
    "hours",
    ["24:00-09:00", "9:00-18:00", "09:00-09:00", "09:00", "09:60-10:00", 900, "00:00-00:00"],
)
def test_bad_hours_are_named(hours: Any) -> None:
    field, _ = the_problem(with_part("timeframe", hours=hours))
    assert field == "rules[0] (id=pricing-hesitation).timeframe.hours"


@pytest.mark.parametrize(
    ("hours", "inside", "outside"),
    [("09:00-18:00", [540, 1079], [539, 1080]), ("22:00-02:00", [1320, 0, 119], [120, 1319])],
)
def test_in_hours_is_start_inclusive_end_exclusive(
    hours: str, inside: list[int], outside: list[int]
) -> None:
    [r] = load_rules(json.dumps([with_part("timeframe", hours=hours)])).rules
    assert r.timeframe is not None
    assert all(r.timeframe.in_hours(m) for m in inside)
    assert not any(r.timeframe.in_hours(m) for m in outside)


def test_empty_trigger_names_the_trigger() -> None:
    field, message = the_problem(rule(trigger={}))
    assert field == "rules[0] (id=pricing-hesitation).trigger"
    assert message.startswith("needs at least one condition: dwell_seconds")


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"dwell_seconds": -5}, "dwell_seconds"),
        ({"dwell_seconds": 2.5}, "dwell_seconds"),
        ({"session_seconds": 0}, "session_seconds"),
        ({"pages_in_session": 0}, "pages_in_session"),
        ({"journey": []}, "journey"),
        ({"journey": ["*/a", ""]}, "journey[1]"),
        ({"scroll_pct": 101}, "scroll_pct"),
        ({"event": ""}, "event"),
    ],
)
def test_bad_trigger_condition_is_named(trigger: dict[str, Any], field: str) -> None:
    assert (
        the_problem(rule(trigger=trigger))[0] == f"rules[0] (id=pricing-hesitation).trigger.{field}"
    )


def test_every_trigger_condition_is_accepted_alone() -> None:
    for trigger in [
        {"session_seconds": 1},
        {"pages_in_session": 1},
        {"journey": ["*"]},
        {"scroll_pct": 0},
        {"event": "exit_intent"},
    ]:
        load_rules(json.dumps([rule(trigger=trigger)]))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "must not be empty"),
        ("Hi {first name}", "needs a name"),
        ("Hi {first_name", "is not closed"),
        ("Hi first_name}", "closes no placeholder"),
        ("Hi {a{b}}", "is not closed"),
        ("Hi {}", "needs a name"),
        ("Hi {|there}", "needs a name"),
    ],
)
def test_bad_message_text_is_named(text: str, says: str) -> None:
    field, message = the_problem(rule(message={"text": text}))
    assert field == "rules[0] (id=pricing-hesitation).message.text"
    assert says in message


def test_bad_locale_text_and_tag_are_named() -> None:
    fields = [p for p, _ in problems_of(rule(message={"text": "x", "locales": {"JA": "{a"}}))]
    assert fields == ["rules[0] (id=pricing-hesitation).message.locales.JA"] * 2


@pytest.mark.parametrize("text", ["Hi {first_name|there}!", "{a.b-c_d}", "{x|}", "plain"])
def test_good_message_text_is_accepted(text: str) -> None:
    load_rules(json.dumps([rule(message={"text": text, "locales": {"pt-BR": text}})]))


@pytest.mark.parametrize(
    ("frequency", "field"),
    [
        ({"per_session": 0}, "per_session"),
        ({"per_day": 0}, "per_day"),
        ({"after_decline_days": -1}, "after_decline_days"),
    ],
)
def test_bad_frequency_is_named(frequency: dict[str, Any], field: str) -> None:
    assert the_problem(rule(frequency=frequency))[0].endswith(f".frequency.{field}")


@pytest.mark.parametrize("pct", [-1, 100.01])
def test_holdout_pct_out_of_range_says_what_is_accepted(pct: float) -> None:
    assert the_problem(rule(holdout_pct=pct)) == (
        "rules[0] (id=pricing-hesitation).holdout_pct",
        f"must be between 0 and 100, got {pct}",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"queue": ""}, "queue"),
        ({"priority": "high"}, "priority"),
        ({"enabled": "maybe"}, "enabled"),
    ],
)
def test_bad_scalar_fields_are_named(fields: dict[str, Any], field: str) -> None:
    assert the_problem(rule(**fields))[0] == f"rules[0] (id=pricing-hesitation).{field}"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rules: [", "not valid YAML"),
        ("", "is empty"),
        ("42", "must be a mapping with a 'rules' list"),
        ("rules: 3", "must be a list"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(InvalidRules, match=says) as caught:
        load_rules(text, source="r.yaml")
    assert str(caught.value).startswith("r.yaml: ")


def test_load_rules_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(CONTRACT_EXAMPLE.replace("dwell_seconds: 30", "dwell_seconds: 0"), "utf-8")
    with pytest.raises(InvalidRules, match=rf"^{path}: rules\[0\] \(id=pricing-hesitation\)"):
        load_rules_file(path)
    path.write_text(CONTRACT_EXAMPLE, "utf-8")
    assert len(load_rules_file(path)) == 1
    with pytest.raises(InvalidRules, match="cannot read"):
        load_rules_file(tmp_path / "missing.yaml")


def test_a_rule_message_round_trips() -> None:
    [r] = load_rules(CONTRACT_EXAMPLE).rules
    assert parse_rule_message(rule_to_json(r)) == r


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{", "rule"),
        (b"[]", "rule"),
        (
            json.dumps(rule(trigger={"dwell_seconds": 0})).encode(),
            "rule (id=pricing-hesitation).trigger.dwell_seconds",
        ),
        (json.dumps({"id": "x", "message": {"text": "hi"}}).encode(), "rule (id=x).trigger"),
    ],
)
def test_a_bad_rule_message_names_the_rule_and_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidRules) as caught:
        parse_rule_message(raw)
    assert caught.value.field == field


def test_rules_are_frozen() -> None:
    r = Rule.model_validate(rule())
    with pytest.raises(ValueError, match="frozen"):
        r.priority = 5  # type: ignore[misc]


@given(st.permutations(["a", "b", "c", "d"]), st.lists(st.integers(-3, 3), min_size=4, max_size=4))
def test_order_of_the_file_never_matters(ids: list[str], priorities: list[int]) -> None:
    rules = [rule(i, priority=p) for i, p in zip(ids, priorities, strict=True)]
    assert load_rules(json.dumps(rules)) == load_rules(json.dumps(sorted(rules, key=str)))
