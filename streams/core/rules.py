"""Rules compiled for evaluation, and the one question asked of them: from a journey's
state at instant ``t0``, what is the earliest instant at which this rule fires if the
visitor sends nothing more?

Compilation happens once per rule set (globs to regexes, predicates to closures,
templates parsed, time frames to windows) so evaluating a rule is a few comparisons.
Presence is left to the engine: a rule's instant is valid while the visitor is present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from schemas.rules import CapacityNeed, QueueBudget, Rule, RuleSet
from streams.core.journey import Journey, shadow_key
from streams.core.matching import compile_audience, compile_globs
from streams.core.patterns import PagesTest, compile_journey_test
from streams.core.profile import Template
from streams.core.timeframe import Window

Matcher = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One enabled rule, ready to evaluate."""

    rule: Rule
    id: str
    priority: int
    shadow: bool  # mode: shadow; decided and recorded, never sent
    sent_key: str  # where its sends (or would-be sends) are counted in the journey
    include: Matcher | None
    exclude: Matcher | None
    audience: Callable[[Mapping[str, Any]], tuple[bool, dict[str, Any]]]
    window: Window
    zone: ZoneInfo  # for per-day limits: the rule's time zone, UTC without a time frame
    dwell_ms: int | None
    session_ms: int | None
    pages: int | None
    journey: PagesTest | None  # over the session's pages and their times
    scroll: float | None
    event: str | None
    text: Template
    locales: dict[str, Template]
    capacity: CapacityNeed | None  # what its queue must have when it fires

    @classmethod
    def of(cls, rule: Rule) -> CompiledRule:
        trigger = rule.trigger
        return cls(
            rule=rule,
            id=rule.id,
            priority=rule.priority,
            shadow=rule.mode == "shadow",
            sent_key=shadow_key(rule.id) if rule.mode == "shadow" else rule.id,
            include=compile_globs(rule.location.include),
            exclude=compile_globs(rule.location.exclude),
            audience=compile_audience(rule.audience),
            window=Window.of(rule.timeframe),
            zone=rule.timeframe.zone if rule.timeframe else ZoneInfo("UTC"),
            dwell_ms=_ms(trigger.dwell_seconds),
            session_ms=_ms(trigger.session_seconds),
            pages=trigger.pages_in_session,
            journey=compile_journey_test(trigger.journey) if trigger.journey else None,
            scroll=trigger.scroll_pct,
            event=trigger.event,
            text=Template.of(rule.message.text),
            locales={tag: Template.of(text) for tag, text in rule.message.locales.items()},
            capacity=rule.capacity,
        )

    def on_page(self, path: str) -> bool:
        """Whether the location globs allow this page (URL without query and fragment)."""
        if self.include is not None and not self.include(path):
            return False
        return self.exclude is None or not self.exclude(path)

    def earliest(self, journey: Journey, t0: int, profile: Mapping[str, Any]) -> int | None:
        """The earliest instant ≥ t0 at which every condition holds, presence aside.

        None when a condition that only an event can change does not hold now. The
        location is the caller's to check (``CompiledRules.on_page`` caches it per page).
        """
        if self.id in journey.fired:
            return None
        if self.pages is not None and journey.page_count < self.pages:
            return None
        if self.scroll is not None and journey.scroll < self.scroll:
            return None
        if self.event is not None and self.event not in journey.page_events:
            return None
        if self.journey is not None and not self.journey(journey.pages, journey.page_ms):
            return None
        if not self.audience(profile)[0]:
            return None
        # Time conditions only ever become true: the latest threshold is the instant.
        t = t0
        if self.dwell_ms is not None:
            t = max(t, journey.entered + self.dwell_ms)
        if self.session_ms is not None:
            t = max(t, journey.session_start + self.session_ms)
        return self.window.next_open(t)


_PAGE_CACHE_SIZE = 20_000  # pages whose matching rules are remembered
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """A rule set ready to evaluate: enabled rules only, highest priority first."""

    rules: tuple[CompiledRule, ...]
    by_id: dict[str, CompiledRule]
    version: str
    # How long a journey must be remembered for these rules' frequency limits to hold:
    # the longest after_decline_days (per_day and per_session need no more than a day).
    memory_ms: int
    # queue -> its budget (docs/contract.md, "Budgets"): its invitations are candidates
    budgets: Mapping[str, QueueBudget]
    # page URL -> the rules whose location allows it. Page popularity is steep (a few
    # pages take most views), so most plans skip the globs entirely.
    _pages: dict[str, tuple[CompiledRule, ...]]

    @classmethod
    def of(cls, ruleset: RuleSet) -> CompiledRules:
        # A rule with enabled: false is never evaluated.
        compiled = tuple(CompiledRule.of(r) for r in ruleset.rules if r.enabled)
        memory = (
            max((r.rule.frequency.after_decline_days or 0 for r in compiled), default=0) * _DAY_MS
        )
        budgets = {name: q.budget for name, q in ruleset.queues.items() if q.budget is not None}
        return cls(compiled, {r.id: r for r in compiled}, ruleset.version, memory, budgets, {})

    def on_page(self, path: str) -> tuple[CompiledRule, ...]:
        """The rules whose location allows this page (URL without query and fragment)."""
        found = self._pages.get(path)
        if found is None:
            if len(self._pages) >= _PAGE_CACHE_SIZE:
                self._pages.clear()
            found = self._pages[path] = tuple(r for r in self.rules if r.on_page(path))
        return found


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
