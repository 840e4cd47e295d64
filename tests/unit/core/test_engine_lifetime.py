"""A journey outlives its visitor's latest event by the horizon, then the visitor starts anew."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.instants import format_instant
from streams import backtest
from streams.core.engine import Limits, advance, horizon
from tests.unit.core.engine_helpers import DAY, MINUTE, SECOND, T0, drive, respond, rules, view

RETURNING = rules(
    """
    rules:
      - id: welcome-back
        audience: {visits: {gte: 2}}
        trigger: {pages_in_session: 1}
        message: {text: "Welcome back"}
    """
)
SHORT = Limits(journey_ttl_ms=10 * DAY)


def test_a_visitor_back_within_the_horizon_is_returning() -> None:
    out = drive([view(T0), view(T0 + 9 * DAY)], RETURNING, SHORT)

    assert [rule for rule, _, _ in out.fired()] == ["welcome-back"]
    assert out.journeys["v1"].visits == 2


def test_a_visitor_gone_longer_than_the_horizon_starts_anew() -> None:
    out = drive([view(T0), view(T0 + 11 * DAY)], RETURNING, SHORT)

    assert out.fired() == []
    assert out.journeys["v1"].visits == 1
    assert out.journeys["v1"].session_start == T0 + 11 * DAY


def test_an_instant_planned_before_the_horizon_still_fires_before_the_visitor_starts_anew() -> None:
    dwell = rules(
        """
        rules:
          - id: dwell
            trigger: {dwell_seconds: 20}
            message: {text: "Hi"}
        """
    )
    # The view plans an instant at T0 + 20 s; nothing ticks it before the next view,
    # eleven days later: it fires first (as a tick would have), then the visitor is new.
    journey, _ = advance(None, view(T0), dwell, SHORT)
    journey, step = advance(journey, view(T0 + 11 * DAY), dwell, SHORT)

    assert [d["triggered_at"] for d in step.decisions] == [format_instant(T0 + 20 * SECOND)]
    assert journey.visits == 1 and journey.fired == []


def test_a_decline_is_remembered_as_long_as_the_rule_asks_even_past_the_horizon() -> None:
    offer = rules(
        """
        rules:
          - id: offer
            trigger: {pages_in_session: 1}
            frequency: {per_session: null, after_decline_days: 20}
            message: {text: "Hi"}
        """
    )
    first = drive([view(T0)], offer, SHORT).invitations[0]["invitation_id"]
    events = [view(T0), respond(T0 + 5 * SECOND, first), view(T0 + 15 * DAY + MINUTE)]

    out = drive(events, offer, SHORT)

    assert horizon(offer, SHORT) == 20 * DAY
    assert [reason for _, _, reason in out.fired()] == ["invited", "after_decline"]


def test_the_backtest_forgets_journeys_past_the_horizon_without_changing_its_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dwell = rules(
        """
        rules:
          - id: dwell
            trigger: {dwell_seconds: 20}
            message: {text: "Hi"}
        """
    )
    events = [
        view(T0 + day * DAY + n * MINUTE, visitor=f"v{day}-{n}")
        for day in range(40)
        for n in range(3)
    ]
    events += [view(T0 + 41 * DAY, visitor="v0-0")]  # back after the horizon: anew
    lines = [e.model_dump_json().encode() for e in events]

    def outcome(sweep_ms: int) -> tuple[list[dict[str, Any]], int, int]:
        monkeypatch.setattr(backtest, "SWEEP_MS", sweep_ms)
        result = backtest.Result()
        backtest.run(backtest.read_events(lines, result), dwell, SHORT, result)
        return result.invitations, result.visitors, len(result.decisions)

    kept = outcome(10**15)  # no sweep within the input
    forgotten = outcome(DAY)

    assert forgotten == kept
    assert kept[1:] == (121, 121)  # the visitor back after the horizon counts anew
