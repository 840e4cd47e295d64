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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
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
    "Queue",
    "QueueBudget",
    "Rule",
    "RuleSet",
    "RulesFile",
    "Timeframe",
    "Trigger",
    "ViewCount",
    "load_rules",
    "load_rules_file",
    "parse_queue_message",
    "parse_rule_message",
    "queue_key",
    "queue_to_json",
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


PERIODS_MS: Final[dict[str, int]] = {"minute": 60_000, "hour": 3_600_000}


class QueueBudget(FrozenModel):
    """At most ``invitations`` invitations per ``per`` from the whole queue, whatever rule
    sends them: a token bucket in event time (docs/contract.md, "Budgets")."""

    invitations: int = Field(ge=1, le=1_000_000, description="the bucket's size and refill")
    per: Literal["minute", "hour"] = Field(description="the refill period")

    @property
    def period_ms(self) -> int:
        return PERIODS_MS[self.per]


class Queue(FrozenModel):
    """What a chat queue sets for every rule that sends to it."""

    budget: QueueBudget | None = None


class QueueMessage(Queue):
    """One queue's settings on the rules topic, keyed by ``queue_key(queue)``."""

    queue: Name


QUEUE_KEY_PREFIX: Final = "queue:"  # never a rule id: those are [a-z0-9-]


def queue_key(queue: str) -> str:
    """The rules-topic key of a queue's settings."""
    return QUEUE_KEY_PREFIX + queue


class RulesFile(FrozenModel):
    """A whole rules file: ``{rules: [...], queues: {...}}`` (unique ids are checked by
    ``load_rules``)."""

    rules: tuple[Rule, ...]
    queues: dict[Name, Queue] = Field(default_factory=dict)


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


def queue_to_json(name: str, queue: Queue) -> bytes:
    """One queue's settings as compact JSON, as published on the rules topic."""
    message = QueueMessage(queue=name, **queue.model_dump())
    return message.__pydantic_serializer__.to_json(message, exclude_defaults=True)


def rule_to_json(rule: Rule) -> bytes:
    """One rule as compact JSON, as published on the rules topic.

    Fields at their defaults are left out; every other value is written, null included:
    ``frequency.per_session: null`` (no limit) must not come back as the default 1."""
    return rule.__pydantic_serializer__.to_json(rule, exclude_defaults=True)


@dataclass(frozen=True, slots=True, repr=False)
class RuleSet:
    """The rules in force: sorted by (-priority, id), the queues' settings, and a version
    naming their content."""

    rules: tuple[Rule, ...]
    version: str
    queues: Mapping[str, Queue] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, rules: Iterable[Rule], queues: Mapping[str, Queue] | None = None) -> RuleSet:
        """Sort, refuse duplicate ids, and compute the version (input order does not matter)."""
        given = tuple(rules)
        problems = _duplicate_ids(given, "rules")
        if problems:
            raise InvalidRules(problems)
        # A queue without settings is no different from a queue not named.
        kept = {name: queue for name, queue in sorted((queues or {}).items()) if queue != Queue()}
        content: Any = [_canonical(r) for r in sorted(given, key=_by_id)]
        if kept:  # rule sets without queue settings keep the version they always had
            queued = {
                name: q.model_dump(mode="json", exclude_none=True) for name, q in kept.items()
            }
            content = {"rules": content, "queues": queued}
        canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        by_priority = tuple(sorted(given, key=lambda r: (-r.priority, r.id)))
        return cls(by_priority, hashlib.sha256(canonical).hexdigest()[:12], MappingProxyType(kept))

    def get(self, rule_id: str) -> Rule | None:
        """The rule with this id, or None."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def with_rule(self, rule: Rule) -> RuleSet:
        """A new RuleSet with ``rule`` added, or replacing the rule with its id."""
        return RuleSet.of([*(r for r in self.rules if r.id != rule.id), rule], self.queues)

    def without(self, rule_id: str) -> RuleSet:
        """A new RuleSet without the rule with this id (a tombstone on the rules topic)."""
        return RuleSet.of((r for r in self.rules if r.id != rule_id), self.queues)

    def with_queue(self, name: str, queue: Queue | None) -> RuleSet:
        """A new RuleSet with the queue's settings set (None: removed)."""
        queues = {n: q for n, q in self.queues.items() if n != name}
        if queue is not None:
            queues[name] = queue
        return RuleSet.of(self.rules, queues)

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
    return RuleSet.of(parsed.rules, parsed.queues)


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


def parse_queue_message(raw: bytes) -> QueueMessage:
    """One queue's settings JSON, as a value on the rules topic; raises InvalidRules."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRules([("queue", f"not valid JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise InvalidRules([("queue", f"must be a JSON object, got {_problems.json_type(data)}")])
    try:
        return QueueMessage.model_validate(data)
    except ValidationError as exc:
        raise InvalidRules(
            [(f"queue.{p}" if p else "queue", r) for p, r in _problems.problems(exc)]
        ) from exc


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
    "budget": QueueBudget,
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
        elif parent[:1] == ("queues",) and len(parent) == 2:  # queues.<name>
            model = Queue
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
