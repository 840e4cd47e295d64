"""A draft rule set from the console or a script: parsed, checked and described.

Validation is ``schemas.rules.load_rules``, the function behind ``beckon rules
validate``: the console and the CLI cannot disagree. This module only reshapes its
answers for the page: errors split into rule and field, the set (its rules and its
queues' settings) as JSON and YAML, each message rendered for a sample visitor, and each
rule's location and trigger, and each queue's budget, in words.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
import yaml

from schemas.errors import InvalidRules
from schemas.rules import (
    JourneyPattern,
    Queue,
    QueueBudget,
    Rule,
    RuleSet,
    load_rules,
    rule_to_json,
)
from schemas.templates import render_template

# What a message is rendered with when the draft names no sample visitor.
SAMPLE_VISITOR: Final[dict[str, Any]] = {
    "first_name": "Ana",
    "country": "JP",
    "language": "ja",
    "device": "desktop",
    "returning": True,
    "visits": 3,
    "plan": "pro",
}
_PATH: Final = re.compile(r"^rules\[(\d+)\](?: \(id=([^)]*)\))?\.?(.*)$")


class DraftError(Exception):
    """A draft that is not a rule set; ``errors`` is what the API answers with 422."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['path'] or 'draft'}: {e['reason']}" for e in errors))
        self.errors = errors


def parse_draft(body: Any) -> RuleSet:
    """``{"rules": [...], "queues": {...}}`` (queues optional) or ``{"yaml": "..."}`` ->
    RuleSet, or DraftError."""
    if not isinstance(body, dict):
        raise DraftError([_error(None, None, "", "must be a JSON object")])
    if isinstance(body.get("yaml"), str):
        text = body["yaml"]
    elif isinstance(body.get("rules"), list):
        draft = {"rules": body["rules"]}
        if body.get("queues") is not None:  # drafts from before budgets have none
            draft["queues"] = body["queues"]
        text = orjson.dumps(draft).decode()
    else:
        raise DraftError(
            [_error(None, None, "", "needs 'rules' (a list of rules) or 'yaml' (a rules file)")]
        )
    try:
        return load_rules(text, source="draft")
    except InvalidRules as exc:
        raise DraftError([_split(path, reason) for path, reason in exc.problems]) from exc


def _split(path: str, reason: str) -> dict[str, Any]:
    """``rules[2] (id=pricing).trigger.dwell_seconds`` -> index 2, id, field path."""
    match = _PATH.match(path)
    if match is None:
        return _error(None, None, path.removeprefix("rules").lstrip("."), reason)
    index, rule_id, field = match.groups()
    return _error(rule_id, int(index), field, reason)


def _error(rule_id: str | None, index: int | None, path: str, reason: str) -> dict[str, Any]:
    return {"rule_id": rule_id, "index": index, "path": path, "reason": reason}


def rules_json(ruleset: RuleSet) -> list[dict[str, Any]]:
    """The rules as JSON objects (defaults left out, as on the rules topic), by priority."""
    return [orjson.loads(rule_to_json(rule)) for rule in ruleset]


def queues_json(ruleset: RuleSet) -> dict[str, dict[str, Any]]:
    """The queues' settings as JSON objects, by name (queues without any are left out)."""
    return {name: _queue_json(queue) for name, queue in ruleset.queues.items()}


def _queue_json(queue: Queue) -> dict[str, Any]:
    return queue.model_dump(mode="json", exclude_none=True)


def rules_yaml(rules: list[dict[str, Any]], queues: dict[str, Any] | None = None) -> str:
    """JSON rules, and the queues' settings if any, as a rules file."""
    data: dict[str, Any] = {"queues": queues} if queues else {}
    data["rules"] = rules
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def rendered(ruleset: RuleSet, sample: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each rule's message for the sample visitor: ``{id: {text, locales: {tag: text}}}``."""
    values = sample if sample is not None else SAMPLE_VISITOR
    return {
        rule.id: {
            "text": render_template(rule.message.text, values),
            "locales": {
                tag: render_template(text, values) for tag, text in rule.message.locales.items()
            },
        }
        for rule in ruleset
    }


def in_words(rule: Rule) -> dict[str, str]:
    """The rule's location and trigger as a person reads them, for the rules list."""
    loc = rule.location
    where = []
    if loc.include:
        where.append("on " + ", ".join(loc.include))
    else:
        where.append("on every page")
    if loc.exclude:
        where.append("except " + ", ".join(loc.exclude))
    t = rule.trigger
    when = []
    if t.dwell_seconds is not None:
        when.append(f"after {t.dwell_seconds} s on the page")
    if t.session_seconds is not None:
        when.append(f"after {t.session_seconds} s in the session")
    if t.pages_in_session is not None:
        when.append(f"from page {t.pages_in_session} of the session")
    if t.journey is not None:
        when.extend(_journey_in_words(t.journey))
    if t.scroll_pct is not None:
        when.append(f"after scrolling {t.scroll_pct:g}%")
    if t.event is not None:
        when.append(f"on the event {t.event!r}")
    if rule.capacity is not None:
        when.append(_capacity_in_words(rule))
    return {"location": "; ".join(where), "trigger": " and ".join(when)}


def queues_in_words(ruleset: RuleSet) -> dict[str, str]:
    """Each queue the rules send to or the set has settings for, and its budget in words:
    ``{"sales": "at most 20 invitations per minute", "default": "no budget"}``."""
    names = sorted({rule.queue for rule in ruleset} | set(ruleset.queues))
    words = {}
    for name in names:
        queue = ruleset.queues.get(name)
        budget = None if queue is None else queue.budget
        words[name] = "no budget" if budget is None else budget_in_words(budget)
    return words


def budget_in_words(budget: QueueBudget) -> str:
    n = budget.invitations
    return f"at most {n} invitation{'s' if n != 1 else ''} per {budget.per}"


def _capacity_in_words(rule: Rule) -> str:
    need = rule.capacity
    assert need is not None
    wants = [f"{need.min_free} free slot{'s' if need.min_free != 1 else ''}"]
    if need.min_agents is not None:
        wants.append(f"{need.min_agents} agent{'s' if need.min_agents != 1 else ''} online")
    if need.max_wait_s is not None:
        wants.append(f"a wait of at most {need.max_wait_s:g} s")
    return f"if {rule.queue} has {', '.join(wants)}"


def _journey_in_words(journey: tuple[str, ...] | JourneyPattern) -> list[str]:
    """``after visiting a then b within 300 s, without c in between``, and the rest."""
    if not isinstance(journey, JourneyPattern):
        return ["after visiting " + " then ".join(journey)]
    words = []
    if journey.steps is not None:
        steps = "after visiting " + " then ".join(journey.steps)
        if journey.within is not None:
            steps += f" within {journey.within} s"
        if journey.without is not None:
            steps += ", without " + " or ".join(journey.without) + " in between"
        words.append(steps)
    for count in journey.min_views or ():
        n = count.at_least
        words.append(f"after {n} view{'s' if n != 1 else ''} of {count.glob}")
    if journey.returned:
        words.append("on coming back to a page seen earlier in the session")
    return words
