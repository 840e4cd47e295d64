"""Targeting rules: the rules file (YAML or JSON), one rule on the rules topic, a RuleSet.

Every model here is frozen and refuses unknown keys, because a misspelt key (``triger``)
that was silently ignored would make a rule fire where its author did not mean it to.
Errors come out as ``InvalidRules`` whose paths name the rule and the field, e.g.
``rules[2] (id=pricing-hesitation).trigger.dwell_seconds: must be greater than 0, got 0``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Self

import orjson
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from schemas import _problems
from schemas.conditions import (
    DAYS,
    OPERATORS,
    UNION_TAGS,
    FrozenModel,
    Location,
    Predicate,
    PredicateOps,
    Timeframe,
)
from schemas.errors import InvalidRules
from schemas.journeys import (
    JOURNEY_PAGES,
    JOURNEY_TAGS,
    JourneyPattern,
    JourneyTrigger,
    ViewCount,
)
from schemas.templates import check_template

__all__ = [
    "DAYS",
    "EMPTY_RULES",
    "JOURNEY_PAGES",
    "OPERATORS",
    "TRIGGER_CONDITIONS",
    "CapacityNeed",
    "Frequency",
    "JourneyPattern",
    "JourneyTrigger",
    "Location",
    "Message",
    "PredicateOps",
    "Rule",
    "RuleSet",
    "RulesFile",
    "Timeframe",
    "Trigger",
    "ViewCount",
    "load_rules",
    "load_rules_file",
    "parse_rule_message",
    "rule_to_json",
]

RuleId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Percent = Annotated[float, Field(ge=0, le=100)]
Template = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(check_template)
]
LocaleTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
TRIGGER_CONDITIONS: Final[tuple[str, ...]] = (
    "dwell_seconds",
    "session_seconds",
    "pages_in_session",
    "journey",
    "scroll_pct",
    "event",
)


class Trigger(FrozenModel):
    """What the visitor must have done; at least one condition, all given must hold."""

    dwell_seconds: int | None = Field(default=None, gt=0)
    session_seconds: int | None = Field(default=None, gt=0)
    pages_in_session: int | None = Field(default=None, ge=1)
    journey: JourneyTrigger | None = None  # a list of globs, or a JourneyPattern
    scroll_pct: Percent | None = None
    event: Name | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if all(getattr(self, name) is None for name in TRIGGER_CONDITIONS):
            raise ValueError("needs at least one condition: " + ", ".join(TRIGGER_CONDITIONS))
        return self


class Message(FrozenModel):
    """The invitation text, with optional translations keyed by language tag."""

    text: Template
    locales: dict[LocaleTag, Template] = Field(default_factory=dict)


class Frequency(FrozenModel):
    """Caps on invitations from one rule to one visitor; null means no cap."""

    per_session: int | None = Field(default=1, ge=1)
    per_day: int | None = Field(default=None, ge=1)
    after_decline_days: int | None = Field(default=None, ge=0)


class CapacityNeed(FrozenModel):
    """What the rule's queue must have at the decision's instant (docs/contract.md,
    "Capacity"); a clause with no field still asks for one free slot."""

    min_free: int = Field(default=1, ge=0, description="at least this many free slots")
    max_wait_s: float | None = Field(
        default=None, ge=0, description="an expected wait of at most this many seconds"
    )
    min_agents: int | None = Field(default=None, ge=0, description="at least this many agents")


class Rule(FrozenModel):
    """One targeting rule, as in a rules file or one message on the rules topic."""

    id: RuleId
    enabled: bool = True
    priority: int = 0
    audience: dict[Name, Predicate] = Field(default_factory=dict)
    location: Location = Field(default_factory=Location)
    timeframe: Timeframe | None = None
    trigger: Trigger
    message: Message
    queue: Name = "default"
    frequency: Frequency = Field(default_factory=Frequency)
    holdout_pct: Percent = 0
    # shadow: decided and recorded as outcome "shadow", never sent (docs/contract.md).
    mode: Literal["live", "shadow"] = "live"
    # Invite only when the queue can answer; suppressed as no_capacity otherwise.
    capacity: CapacityNeed | None = None


class RulesFile(FrozenModel):
    """A whole rules file: ``{rules: [...]}`` (unique ids are checked by ``load_rules``)."""

    rules: tuple[Rule, ...]


def _duplicate_ids(rules: Iterable[Rule], where: str) -> list[tuple[str, str]]:
    first: dict[str, int] = {}
    problems = []
    for i, rule in enumerate(rules):
        if rule.id in first:
            problems.append(
                (f"{where}[{i}] (id={rule.id}).id", f"repeats the id of {where}[{first[rule.id]}]")
            )
        first.setdefault(rule.id, i)
    return problems


def rule_to_json(rule: Rule) -> bytes:
    """One rule as compact JSON, as published on the rules topic.

    Fields at their defaults are left out; every other value is written, null included:
    ``frequency.per_session: null`` (no limit) must not come back as the default 1."""
    return rule.__pydantic_serializer__.to_json(rule, exclude_defaults=True)


@dataclass(frozen=True, slots=True, repr=False)
class RuleSet:
    """The rules in force: sorted by (-priority, id), and a version naming their content."""

    rules: tuple[Rule, ...]
    version: str

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> RuleSet:
        """Sort, refuse duplicate ids, and compute the version (input order does not matter)."""
        given = tuple(rules)
        problems = _duplicate_ids(given, "rules")
        if problems:
            raise InvalidRules(problems)
        canonical = orjson.dumps(
            [_canonical(r) for r in sorted(given, key=_by_id)], option=orjson.OPT_SORT_KEYS
        )
        by_priority = tuple(sorted(given, key=lambda r: (-r.priority, r.id)))
        return cls(by_priority, hashlib.sha256(canonical).hexdigest()[:12])

    def get(self, rule_id: str) -> Rule | None:
        """The rule with this id, or None."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def with_rule(self, rule: Rule) -> RuleSet:
        """A new RuleSet with ``rule`` added, or replacing the rule with its id."""
        return RuleSet.of([*(r for r in self.rules if r.id != rule.id), rule])

    def without(self, rule_id: str) -> RuleSet:
        """A new RuleSet without the rule with this id (a tombstone on the rules topic)."""
        return RuleSet.of(r for r in self.rules if r.id != rule_id)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __hash__(self) -> int:
        # Rules hold dicts, so hash by the version, which equal rule sets share.
        return hash(self.version)

    def __repr__(self) -> str:
        return f"RuleSet(version={self.version!r}, ids={[r.id for r in self.rules]!r})"


def _by_id(rule: Rule) -> str:
    return rule.id


def _canonical(rule: Rule) -> dict[str, Any]:
    data = rule.model_dump(mode="json", exclude_none=True)
    # Fields added after rules were first versioned are left out at their defaults, so
    # rules that do not use them keep the version they always had.
    if data["mode"] == "live":
        del data["mode"]
    return data


EMPTY_RULES: Final[RuleSet] = RuleSet.of(())


def load_rules(text: str, *, source: str = "rules") -> RuleSet:
    """A rules file's text (YAML or JSON; ``{rules: [...]}`` or a bare list) -> RuleSet."""
    prefix = f"{source}: "
    data = _decode(text, prefix)
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise InvalidRules(
            [("", f"must be a mapping with a 'rules' list, got {_problems.json_type(data)}")],
            prefix=prefix,
        )
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidRules(_rule_problems(exc, data, RulesFile), prefix=prefix) from exc
    duplicates = _duplicate_ids(parsed.rules, "rules")
    if duplicates:
        raise InvalidRules(duplicates, prefix=prefix)
    return RuleSet.of(parsed.rules)


def load_rules_file(path: str | os.PathLike[str]) -> RuleSet:
    """Read and load a rules file; a file that cannot be read is an InvalidRules too."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRules([("", f"cannot read the rules file: {exc}")]) from exc
    return load_rules(text, source=os.fspath(path))


def parse_rule_message(raw: bytes) -> Rule:
    """One rule's JSON, as a value on the rules topic -> Rule; raises InvalidRules."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRules([("rule", f"not valid JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise InvalidRules([("rule", f"must be a JSON object, got {_problems.json_type(data)}")])
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        raise InvalidRules(_rule_problems(exc, data, Rule)) from exc


def _decode(text: str, prefix: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # not JSON; YAML is the usual form
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidRules([("", f"not valid YAML: {problem}{where}")], prefix=prefix) from exc
    if data is None:
        raise InvalidRules([("", "is empty; write `rules: []` for no rules")], prefix=prefix)
    return data


_SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "location": Location,
    "journey": JourneyPattern,
    "timeframe": Timeframe,
    "trigger": Trigger,
    "message": Message,
    "frequency": Frequency,
    "capacity": CapacityNeed,
}


_TAGS: Final = UNION_TAGS | JOURNEY_TAGS


def _rule_problems(
    exc: ValidationError, data: dict[str, Any], root: type[BaseModel]
) -> list[tuple[str, str]]:
    def label(loc: tuple[int | str, ...]) -> str:
        loc = tuple(part for part in loc if part not in _TAGS)
        if root is Rule:
            return _problems.dotted((f"rule{_id(data)}", *loc))
        text = _problems.dotted(loc)
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rules = data.get("rules")
            rule = rules[loc[1]] if isinstance(rules, list) else None
            head = f"rules[{loc[1]}]"
            text = head + _id(rule) + text[len(head) :]
        return text

    def describe(err: ErrorDetails) -> str:
        if err["type"] != "extra_forbidden":
            return _problems.message(err)
        parent = tuple(p for p in err["loc"][:-1] if p not in _TAGS)
        model: type[BaseModel] | None = root
        if parent and isinstance(parent[-1], int):  # an item of rules or of min_views
            model = ViewCount if parent[-2:-1] == ("min_views",) else Rule
        elif parent:
            model = _SECTIONS.get(str(parent[-1]))
        if model is None:
            return "is not a known field"
        accepted = [f.alias or n for n, f in model.model_fields.items()]
        close = difflib.get_close_matches(str(err["loc"][-1]), accepted, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"is not a known field{hint}; accepted: {', '.join(accepted)}"

    return _problems.problems(exc, path=label, describe=describe)


def _id(rule: Any) -> str:
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    return f" (id={rule_id})" if isinstance(rule_id, str) and rule_id else ""
