"""The engine: when rules fire for one visitor, and what comes of it.

Two entry points, both pure (no clock reads; instants are epoch ms):

- ``advance(journey, event, rules, limits)``: fold one event in. First every rule instant
  that falls before the event fires (time conditions fire at their exact threshold,
  without waiting for this event), then the event is applied and the instants at which
  rules can fire are planned anew. A rule that holds at the event's own instant fires
  once no other event can come at that instant: before the visitor's next later event,
  or at a tick (``Step.wakeup`` is then the event's instant).
- ``tick(journey, now, rules, limits)``: fire every rule instant up to ``now``; drivers
  call it when the wall clock passes ``Step.wakeup`` (live) or at the end of the input
  (backtest, with ``now = END``).

The live worker and ``beckon backtest`` both drive these two functions, which is what
makes their invitations the same. ``Step.wakeup`` is the next instant at which a rule
can fire if the visitor sends nothing more, computed from the state alone.

A rule fires at most once per page view; of the rules firing at one instant the highest
priority wins (ties: rule id) and the others are suppressed as ``lower_priority``. The
winner is then checked in this order: ``holdout``, ``after_decline``, ``per_session``,
``per_day``, ``min_gap``; the first that applies is the reason it is suppressed.

A rule with a ``capacity`` clause is checked last, after ``min_gap``: its queue's capacity
at the instant is the as-of lookup of ``streams.core.capacity`` in the ``CapacityView`` the
driver passes (none: unknown everywhere); ``no_capacity`` when it does not hold.

A rule with ``mode: shadow`` is decided but never sent: its decision's outcome is
``shadow``, with the reason it would have been suppressed or null. Live rules rank among
live rules only, so a shadow rule never changes what a live rule does; a shadow rule
ranks among every rule firing at its instant, and its would-be sends count towards its
own ``per_session`` and ``per_day`` only (``journey.shadow_key``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple

from schemas.capacity import Capacity
from schemas.events import ClickEvent, InvitationResponse
from schemas.instants import format_instant
from schemas.invitations import Suppression
from streams.core.capacity import CapacityView, capacity_at, facts, has_capacity
from streams.core.dwell import DEFAULT_WINDOW_MS, Contribution, observe
from streams.core.journey import (
    Journey,
    apply,
    is_duplicate,
    new_session,
    remember_sent,
    remember_would_send,
    respond,
    starts_session,
)
from streams.core.matching import in_holdout
from streams.core.profile import pick_locale
from streams.core.rules import CompiledRule, CompiledRules

END: Final = 2**62  # "the end of time" for a final tick
# Invitation ids are uuid5 in this namespace over (site, visitor, rule, instant).
_ID_NAMESPACE: Final = uuid.UUID("6f1d7c52-3a51-4c1e-9a0b-6b65636b6f6e")
_DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class Limits:
    """The engine's settings, in milliseconds (``Settings.limits()`` builds them)."""

    session_gap_ms: int = 30 * 60_000
    presence_ms: int = 30_000
    min_gap_ms: int = 60_000
    ttl_ms: int = 60_000
    window_ms: int = DEFAULT_WINDOW_MS  # dwell aggregates' window
    journey_ttl_ms: int = 30 * _DAY_MS  # a visitor gone longer starts anew (see horizon)
    # capacity clauses: the record measured at least delay before the instant counts,
    # unless older than max_age at the instant; then unknown, which allows or denies
    capacity_delay_ms: int = 5_000
    capacity_max_age_ms: int = 120_000
    capacity_unknown_allows: bool = True


class Step(NamedTuple):
    """What one call produced: every decision, the invitations among them, the next
    wakeup, and what the event added to the dwell aggregates (``streams.core.dwell``)."""

    decisions: list[dict[str, Any]]
    invitations: list[dict[str, Any]]
    wakeup: int | None
    pages: list[Contribution] = []  # noqa: RUF012 (never mutated: a fresh list or this)
    answers: list[tuple[str, str]] = []  # noqa: RUF012 (rule id, response) counted


def advance(
    journey: Journey | None,
    event: ClickEvent,
    rules: CompiledRules,
    limits: Limits,
    capacity: CapacityView | None = None,
    *,
    dwell: bool = True,
) -> tuple[Journey, Step]:
    """Fold one event into the visitor's journey (created on its first event).

    ``capacity``: the queues' capacity records so far, for rules with a capacity clause
    (None: unknown for every queue). ``dwell``: whether to work out what the event adds to
    the dwell aggregates (``Step.pages``); a driver that publishes none (the backtest)
    passes False. No rule reads them, so the decisions are the same either way."""
    if journey is None:
        journey = Journey(event.visitor_id, event.site_id)
    decisions: list[dict[str, Any]] = []
    invitations: list[dict[str, Any]] = []
    if is_duplicate(journey, event.event_id):
        return journey, Step(decisions, invitations, wakeup(journey, limits))
    # An event older than the journey (a late arrival, live only) counts at the journey's
    # clock: time never runs backwards for a visitor.
    t = max(event.ts, journey.clock)
    if journey.pending_version != rules.version:
        _plan(journey, rules, journey.clock)
    if journey.pending and journey.pending[0][0] < t:  # most events have nothing due
        _fire(journey, rules, limits, t, decisions, invitations, capacity, inclusive=False)
    if journey.clock >= 0 and t - journey.clock > horizon(rules, limits):
        # Gone longer than the horizon: the visitor starts anew, as if never seen. The
        # worker deletes such journeys from its table; the backtest forgets them too.
        journey = Journey(event.visitor_id, event.site_id)
        is_duplicate(journey, event.event_id)
    # Absent just before t: instants planned earlier may lie in the absence; plan anew.
    replan = t > journey.present_until(limits.presence_ms)
    starts = starts_session(journey, event, t, limits.session_gap_ms)
    pages = (
        observe(journey, event, t, starts, limits.presence_ms, limits.window_ms) if dwell else []
    )
    if starts:
        new_session(journey, event, t)
        replan = True
    answers: list[tuple[str, str]] = []
    if isinstance(event, InvitationResponse):
        rule_id = respond(journey, event, t)
        if rule_id is not None:
            answers.append((rule_id, event.response))
    if apply(journey, event, t) or replan:
        _plan(journey, rules, t)
    # Rules that hold at t itself wait: another event at the same instant may still come,
    # and conditions are judged from every event with time <= t. They fire before the
    # visitor's next later event, or at the tick that Step.wakeup (= t) asks for.
    return journey, Step(decisions, invitations, wakeup(journey, limits), pages, answers)


def tick(
    journey: Journey,
    now: int,
    rules: CompiledRules,
    limits: Limits,
    capacity: CapacityView | None = None,
) -> Step:
    """Fire every rule instant up to and including ``now``."""
    decisions: list[dict[str, Any]] = []
    invitations: list[dict[str, Any]] = []
    if journey.pending_version != rules.version:
        _plan(journey, rules, journey.clock)
    _fire(journey, rules, limits, now, decisions, invitations, capacity, inclusive=True)
    return Step(decisions, invitations, wakeup(journey, limits))


def horizon(rules: CompiledRules, limits: Limits) -> int:
    """How long a journey outlives its visitor's latest event: ``journey_ttl_ms``, or the
    longest frequency limit in force if that is longer, so no limit is ever cut short."""
    return max(limits.journey_ttl_ms, rules.memory_ms)


def wakeup(journey: Journey, limits: Limits) -> int | None:
    """The next instant a rule can fire without another event, or None."""
    if journey.pending and journey.pending[0][0] <= journey.present_until(limits.presence_ms):
        return journey.pending[0][0]
    return None


def _plan(journey: Journey, rules: CompiledRules, t0: int) -> None:
    """Recompute, from the state at t0, the instant at which each rule can fire."""
    journey.pending_version = rules.version
    if journey.path is None or journey.left:
        journey.pending = []  # no current page, or it was left: nothing can fire
        return
    profile = journey.profile()
    pending = []
    for rule in rules.on_page(journey.path):
        at = rule.earliest(journey, t0, profile)
        if at is not None:
            pending.append((at, rule.id))
    pending.sort()
    journey.pending = pending


def _fire(
    journey: Journey,
    rules: CompiledRules,
    limits: Limits,
    limit: int,
    decisions: list[dict[str, Any]],
    invitations: list[dict[str, Any]],
    capacity: CapacityView | None,
    *,
    inclusive: bool,
) -> None:
    """Fire, in time order, the planned instants before (or up to) ``limit``."""
    present_until = journey.present_until(limits.presence_ms)
    while journey.pending:
        at = journey.pending[0][0]
        if at > present_until or at > limit or (at == limit and not inclusive):
            return
        group = [rules.by_id[r] for t, r in journey.pending if t == at and r in rules.by_id]
        journey.pending = [p for p in journey.pending if p[0] != at]
        _decide(journey, group, at, rules.version, limits, decisions, invitations, capacity)


def _decide(
    journey: Journey,
    group: list[CompiledRule],
    t: int,
    version: str,
    limits: Limits,
    decisions: list[dict[str, Any]],
    invitations: list[dict[str, Any]],
    capacity: CapacityView | None,
) -> None:
    """Record the rules that fire together at ``t``: one live rule may invite, the other
    live rules are suppressed; each shadow rule is judged as if it were live, and sends
    nothing."""
    group.sort(key=lambda r: (-r.priority, r.id))
    triggered_at = format_instant(t)
    live_ranked = False  # a live rule ranked before: the live rules that follow lose
    for rank, rule in enumerate(group):
        journey.fired.append(rule.id)
        invitation_id = str(
            uuid.uuid5(
                _ID_NAMESPACE, f"{journey.site_id}\x1f{journey.visitor_id}\x1f{rule.id}\x1f{t}"
            )
        )
        day = _local_day(rule, t)
        # Live rules rank among live rules only, so shadow rules never change live output;
        # a shadow rule ranks among all the rules firing at t.
        lost = rank > 0 if rule.shadow else live_ranked
        live_ranked = live_ranked or not rule.shadow
        seen = None
        if rule.capacity is not None:  # what its queue had at t (None: unknown)
            seen = capacity_at(capacity, rule.rule.queue, t, limits.capacity_delay_ms,
                               limits.capacity_max_age_ms)  # fmt: skip
        reason = (
            Suppression.LOWER_PRIORITY if lost else _suppressed(journey, rule, t, day, limits, seen)
        )
        decision = {
            "invitation_id": invitation_id,
            "visitor_id": journey.visitor_id,
            "session_id": journey.session_id,
            "site_id": journey.site_id,
            "rule_id": rule.id,
            "url": journey.url,
            "triggered_at": triggered_at,
            "priority": rule.priority,
            "outcome": "shadow" if rule.shadow else "suppressed" if reason else "invited",
            "reason": reason,
            "rules_version": version,
        }
        decisions.append(decision)
        if reason is not None:
            continue
        if rule.shadow:  # its own caps only: min_gap and the live rules never see it
            remember_would_send(journey, rule.sent_key, day)
        else:
            invitations.append(_invitation(journey, rule, t, decision, limits, seen))
            remember_sent(journey, invitation_id, rule.id, t, day)


def _suppressed(
    journey: Journey,
    rule: CompiledRule,
    t: int,
    day: str,
    limits: Limits,
    seen: Capacity | None,
) -> Suppression | None:
    """Why the winning rule may not invite now, or None (for a shadow rule: why it
    would not, its caps counting its own would-be sends)."""
    frequency = rule.rule.frequency
    if in_holdout(journey.visitor_id, rule.id, rule.rule.holdout_pct):
        return Suppression.HOLDOUT
    declined = journey.declined.get(rule.id)
    if (
        frequency.after_decline_days is not None
        and declined is not None
        and t - declined < frequency.after_decline_days * _DAY_MS
    ):
        return Suppression.AFTER_DECLINE
    if (
        frequency.per_session is not None
        and journey.sent_session.get(rule.sent_key, 0) >= frequency.per_session
    ):
        return Suppression.PER_SESSION
    if frequency.per_day is not None:
        sent = journey.sent_day.get(rule.sent_key)
        if sent is not None and sent[0] == day and sent[1] >= frequency.per_day:
            return Suppression.PER_DAY
    if journey.last_sent >= 0 and t - journey.last_sent < limits.min_gap_ms:
        return Suppression.MIN_GAP
    if rule.capacity is not None and not has_capacity(
        rule.capacity, seen, unknown_allows=limits.capacity_unknown_allows
    ):
        return Suppression.NO_CAPACITY
    return None


def _local_day(rule: CompiledRule, t: int) -> str:
    """The date of ``t`` in the rule's time zone (UTC without a time frame)."""
    return datetime.fromtimestamp(t / 1000, rule.zone).date().isoformat()


def _invitation(
    journey: Journey,
    rule: CompiledRule,
    t: int,
    decision: dict[str, Any],
    limits: Limits,
    seen: Capacity | None,
) -> dict[str, Any]:
    profile = journey.profile()
    locale = pick_locale(profile.get("language"), rule.locales)
    template = rule.locales[locale] if locale is not None else rule.text
    return {
        **{k: decision[k] for k in _IDENTITY},
        "queue": rule.rule.queue,
        "message": template.render(profile),
        "locale": locale,
        "expires_at": format_instant(t + limits.ttl_ms),
        "context": {
            "dwell_seconds": (t - journey.entered) / 1000,
            "session_seconds": (t - journey.session_start) / 1000,
            "pages_in_session": journey.page_count,
            "journey": journey.pages[-10:],
            "scroll_pct": journey.scroll,
            "page_events": list(journey.page_events),
            "audience": rule.audience(profile)[1],
            "rules_version": decision["rules_version"],
            # only for a rule with a capacity clause: what its queue had (null: unknown)
            **({"capacity": facts(seen)} if rule.capacity is not None else {}),
        },
    }


_IDENTITY: Final = (
    "invitation_id",
    "visitor_id",
    "session_id",
    "site_id",
    "rule_id",
    "url",
    "triggered_at",
    "priority",
)

__all__ = ["END", "Limits", "Step", "advance", "tick", "wakeup"]
