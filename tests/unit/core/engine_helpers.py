"""Literal events, compiled rules and a hand-driven run of the engine, for the engine tests.

Every instant is epoch ms given by the test; nothing reads a clock. ``drive`` folds a list
of events into per-visitor journeys with ``advance`` (in the order given, as a live worker
sees them), then ticks each journey to ``until``, and checks that every decision and
invitation it produced validates against the published models.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.events import ClickEvent, validate_event
from schemas.instants import parse_instant
from schemas.invitations import DECISION, INVITATION
from schemas.rules import load_rules
from streams.core.engine import END, Limits, advance, tick
from streams.core.journey import Journey
from streams.core.rules import CompiledRules

SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

# Tuesday 2026-12-01 10:00:00 UTC (19:00 in Tokyo, 11:00 in Berlin).
T0: Final = parse_instant("2026-12-01T10:00:00Z")
SITE: Final = "shop"
VISITOR: Final = "v1"
PAGE: Final = "https://shop.example/pricing"
OTHER: Final = "https://shop.example/about"


def at(text: str) -> int:
    """Epoch ms of an RFC 3339 instant, e.g. ``at("2026-12-01T09:00:00+09:00")``."""
    return parse_instant(text)


def rules(yaml_text: str) -> CompiledRules:
    """Compile a rules file given as (indented) YAML text."""
    return CompiledRules.of(load_rules(textwrap.dedent(yaml_text)))


def event(
    kind: str,
    ts: int,
    url: str | None = PAGE,
    *,
    visitor: str = VISITOR,
    event_id: str | None = None,
    **fields: Any,
) -> ClickEvent:
    """One validated ClickEvent; its id defaults to one built from its content."""
    data: dict[str, Any] = {
        "event_id": event_id or f"{visitor}-{kind}-{ts}-{url}",
        "type": kind,
        "visitor_id": visitor,
        "site_id": SITE,
        "ts": ts,
        **fields,
    }
    if url is not None:
        data["url"] = url
    return validate_event(data)


def view(ts: int, url: str = PAGE, **fields: Any) -> ClickEvent:
    return event("page_view", ts, url, **fields)


def ping(ts: int, url: str = PAGE, **fields: Any) -> ClickEvent:
    return event("page_ping", ts, url, **fields)


def leave(ts: int, url: str = PAGE, **fields: Any) -> ClickEvent:
    return event("page_leave", ts, url, **fields)


def scroll(ts: int, pct: float, url: str = PAGE, **fields: Any) -> ClickEvent:
    return event("scroll", ts, url, scroll_pct=pct, **fields)


def exit_intent(ts: int, url: str = PAGE, **fields: Any) -> ClickEvent:
    return event("exit_intent", ts, url, **fields)


def custom(ts: int, name: str, url: str | None = PAGE, **fields: Any) -> ClickEvent:
    return event("custom", ts, url, name=name, **fields)


def identify(ts: int, **attributes: Any) -> ClickEvent:
    return event("identify", ts, None, attributes=attributes)


def respond(ts: int, invitation_id: str, response: str = "declined") -> ClickEvent:
    return event("invitation_response", ts, None, invitation_id=invitation_id, response=response)


def pings(start: int, stop: int, every: int = 10 * SECOND, url: str = PAGE) -> list[ClickEvent]:
    """page_ping events at start, start+every, … up to and including stop."""
    return [ping(ts, url) for ts in range(start, stop + 1, every)]


@dataclass
class Outcome:
    """What one run produced, in the order the engine produced it."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    invitations: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)  # (rule id, response)
    journeys: dict[str, Journey] = field(default_factory=dict)

    def fired(self) -> list[tuple[str, int, str]]:
        """(rule id, triggered_at in ms, outcome or reason) for every decision."""
        return [
            (d["rule_id"], parse_instant(d["triggered_at"]), d["reason"] or d["outcome"])
            for d in self.decisions
        ]


def drive(
    events: Iterable[ClickEvent],
    compiled: CompiledRules,
    limits: Limits | None = None,
    until: int = END,
) -> Outcome:
    """``advance`` over ``events`` in the given order, then ``tick`` every journey to ``until``."""
    limits = limits or Limits()
    out = Outcome()
    for e in events:
        journey, step = advance(out.journeys.get(e.visitor_id), e, compiled, limits)
        out.journeys[e.visitor_id] = journey
        out.decisions += step.decisions
        out.invitations += step.invitations
        out.answers += step.answers
    for journey in out.journeys.values():
        step = tick(journey, until, compiled, limits)
        out.decisions += step.decisions
        out.invitations += step.invitations
    check_outputs(out.decisions, out.invitations)
    return out


def check_outputs(
    decisions: Iterable[dict[str, Any]], invitations: Iterable[dict[str, Any]]
) -> None:
    """Every output validates against the models consumers parse."""
    for decision in decisions:
        DECISION.validate_python(decision)
    for invitation in invitations:
        INVITATION.validate_python(invitation)
