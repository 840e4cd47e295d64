"""The preview's answer, shaped from two backtest results: per rule id, what each rule
set did (invitations, suppressed by reason, shadow decisions, visitors invited), the
difference, and a sample of the draft's decisions with why each fired. The queues'
budgets are applied to the added-up figures (``hold_back``), once every visitor's
invitations are known, as ``beckon backtest`` applies them.

Pure: plain values in, JSON-able values out (docs/console.md, "Preview").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from schemas.invitations import Suppression
from schemas.rules import JourneyPattern, QueueBudget, Rule
from streams.backtest import Result
from streams.core.budget import refused
from streams.core.rules import CompiledRules
from streams.dashboard.board import why


def figures(result: Result) -> dict[str, dict[str, Any]]:
    """Per rule id: invitations, suppressed by reason, shadow decisions, visitors invited."""
    out: dict[str, dict[str, Any]] = {}
    invited: dict[str, set[str]] = {}
    for decision in result.decisions:
        rule_id, outcome = decision["rule_id"], decision["outcome"]
        counts = out.get(rule_id)
        if counts is None:
            counts = out[rule_id] = _zero()
            invited[rule_id] = set()
        if outcome == "invited":
            counts["invitations"] += 1
            invited[rule_id].add(decision["visitor_id"])
        elif outcome == "shadow":
            counts["shadow"] += 1
        else:
            reason = str(decision["reason"] or outcome)
            counts["suppressed"][reason] = counts["suppressed"].get(reason, 0) + 1
    for rule_id, counts in out.items():
        counts["visitors"] = len(invited[rule_id])
        counts["suppressed"] = dict(sorted(counts["suppressed"].items()))
    return out


# What the budgets need of an invitation, and what its hold-back changes.
CANDIDATE: Final = ("invitation_id", "queue", "triggered_at", "priority", "rule_id", "visitor_id")


def candidates(result: Result, budgets: Mapping[str, QueueBudget]) -> list[dict[str, Any]]:
    """The invitations of the queues with a budget, for ``hold_back``."""
    if not budgets:
        return []
    return [
        {key: invitation[key] for key in CANDIDATE}
        for invitation in result.invitations
        if invitation["queue"] in budgets
    ]


def hold_back(
    counts: dict[str, dict[str, Any]],
    taken: dict[str, list[dict[str, Any]]],
    found: list[dict[str, Any]],
    budgets: Mapping[str, QueueBudget],
) -> None:
    """Apply the budgets, in place, to a set's added-up ``figures`` and ``samples`` and
    every one of its ``candidates``: an invitation its queue's budget holds back is
    suppressed ``budget`` instead, and its visitor no longer counts as invited unless
    another invitation of the rule was sent to them (every invitation of a rule whose
    queue has a budget is a candidate)."""
    held = refused(found, budgets)
    if not held:
        return
    invited: dict[str, set[str]] = {}
    over: Counter[str] = Counter()
    marked = set()
    for candidate in found:
        rule_id = candidate["rule_id"]
        visitors = invited.setdefault(rule_id, set())
        if candidate["invitation_id"] in held:
            over[rule_id] += 1
            marked.add((rule_id, candidate["visitor_id"], candidate["triggered_at"]))
        else:
            visitors.add(candidate["visitor_id"])
    reason = Suppression.BUDGET.value
    for rule_id, n in over.items():
        row = counts[rule_id]
        row["invitations"] -= n
        row["visitors"] = len(invited[rule_id])
        suppressed = {**row["suppressed"], reason: row["suppressed"].get(reason, 0) + n}
        row["suppressed"] = dict(sorted(suppressed.items()))
    for rule_id, decisions in taken.items():
        for d in decisions:
            if (
                d["outcome"] == "invited"
                and (rule_id, d["visitor_id"], d["triggered_at"]) in marked
            ):
                d["outcome"], d["reason"] = "suppressed", reason


def _zero() -> dict[str, Any]:
    return {"invitations": 0, "suppressed": {}, "shadow": 0, "visitors": 0}


def rows(
    draft: CompiledRules,
    in_force: CompiledRules,
    mine: dict[str, dict[str, Any]],
    theirs: dict[str, dict[str, Any]],
    taken: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """One row per rule id of either set, the draft's in priority order, then the rest:
    ``mine`` and ``theirs`` are the draft's and the set in force's ``figures``, ``taken``
    the draft's ``samples``."""
    ids = [rule.id for rule in draft.rules]
    ids += [rule.id for rule in in_force.rules if rule.id not in draft.by_id]
    sets = (("draft", draft), ("in_force", in_force))
    rows = []
    for rule_id in ids:
        a, b = mine.get(rule_id, _zero()), theirs.get(rule_id, _zero())
        rows.append(
            {
                "rule_id": rule_id,
                "in": [name for name, rules in sets if rule_id in rules.by_id],
                "draft": a,
                "in_force": b,
                "difference": {
                    "invitations": a["invitations"] - b["invitations"],
                    "visitors": a["visitors"] - b["visitors"],
                },
                "sample": taken.get(rule_id, []),
            }
        )
    return rows


def add(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The ``figures`` of disjoint sets of visitors, added up (visitors too: disjoint)."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for rule_id, counts in part.items():
            total = out.setdefault(rule_id, _zero())
            for key in ("invitations", "shadow", "visitors"):
                total[key] += counts[key]
            for reason, n in counts["suppressed"].items():
                total["suppressed"][reason] = total["suppressed"].get(reason, 0) + n
    for total in out.values():
        total["suppressed"] = dict(sorted(total["suppressed"].items()))
    return out


def first(
    parts: list[dict[str, list[dict[str, Any]]]], size: int
) -> dict[str, list[dict[str, Any]]]:
    """The first ``size`` of several ``samples`` per rule, in the decisions' output order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        for rule_id, taken in part.items():
            out.setdefault(rule_id, []).extend(taken)
    return {
        rule_id: sorted(taken, key=lambda d: (d["triggered_at"], d["visitor_id"]))[:size]
        for rule_id, taken in out.items()
    }


def samples(result: Result, rules: CompiledRules, size: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``size`` decisions of each rule, in time order, each with its why."""
    out: dict[str, list[dict[str, Any]]] = {}
    for decision in result.decisions:
        taken = out.setdefault(decision["rule_id"], [])
        if len(taken) < size:
            taken.append(decision)
    sampled = {d["invitation_id"] for taken in out.values() for d in taken}
    contexts = {
        invitation["invitation_id"]: invitation["context"]
        for invitation in result.invitations
        if invitation["invitation_id"] in sampled
    }
    words = {rule.id: trigger_words(rule.rule) for rule in rules.rules}
    return {
        rule_id: [
            {
                "visitor_id": d["visitor_id"],
                "triggered_at": d["triggered_at"],
                "outcome": d["outcome"],
                "reason": None if d["reason"] is None else str(d["reason"]),
                "why": (
                    why(contexts[d["invitation_id"]])
                    if d["invitation_id"] in contexts
                    else words.get(rule_id, "")
                ),
            }
            for d in decisions
        ]
        for rule_id, decisions in out.items()
    }


def trigger_words(rule: Rule) -> str:
    """A rule's trigger and pages in words: ``dwell 30 s on */pricing``."""
    trigger = rule.trigger
    parts = []
    if trigger.dwell_seconds is not None:
        parts.append(f"dwell {trigger.dwell_seconds} s")
    if trigger.session_seconds is not None:
        parts.append(f"session {trigger.session_seconds} s")
    if trigger.pages_in_session is not None:
        n = trigger.pages_in_session
        parts.append(f"{n} page{'s' if n != 1 else ''}")
    if isinstance(trigger.journey, JourneyPattern):
        parts.extend(_pattern_words(trigger.journey))
    elif trigger.journey is not None:
        parts.append("journey " + " → ".join(trigger.journey))
    if trigger.scroll_pct is not None:
        parts.append(f"scroll {trigger.scroll_pct:g}%")
    if trigger.event is not None:
        parts.append(f"event {trigger.event}")
    text = " · ".join(parts)
    if rule.location.include:
        text += " on " + ", ".join(rule.location.include)
    return text


def _pattern_words(journey: JourneyPattern) -> list[str]:
    """``journey a → b in 300 s, not via c``, ``3× */products/*``, ``return``."""
    parts = []
    if journey.steps is not None:
        text = "journey " + " → ".join(journey.steps)
        if journey.within is not None:
            text += f" in {journey.within} s"
        if journey.without is not None:
            text += ", not via " + ", ".join(journey.without)
        parts.append(text)
    parts += [f"{count.at_least}× {count.glob}" for count in journey.min_views or ()]
    if journey.returned:
        parts.append("return")
    return parts
