"""``beckon backtest`` over JSON lines: event-time order whatever the file's, bad lines counted."""

from __future__ import annotations

from typing import Any

import orjson

from streams.backtest import Result, read_events, run, summary
from streams.core.engine import Limits
from tests.unit.core.engine_helpers import OTHER, PAGE, SECOND, SITE, T0, check_outputs, rules

RULES = rules(
    """
    rules:
      - {id: dwell, priority: 2, trigger: {dwell_seconds: 20}, message: {text: "A"}}
      - {id: scrolled, priority: 1, trigger: {scroll_pct: 50}, frequency: {per_session: null},
         message: {text: "B"}}
    """
)


def line(kind: str, ts: int, visitor: str = "v1", **fields: Any) -> bytes:
    data: dict[str, Any] = {"event_id": f"{visitor}-{kind}-{ts}", "type": kind}
    data["visitor_id"] = visitor
    data |= {"site_id": SITE, "ts": ts, "url": PAGE, **fields}
    return orjson.dumps(data)


LINES = [
    line("page_view", T0),
    line("page_ping", T0 + 10 * SECOND),
    line("scroll", T0 + 12 * SECOND, scroll_pct=70),
    line("page_view", T0 + 5 * SECOND, "v2"),
    line("page_ping", T0 + 25 * SECOND, "v2"),
    line("page_view", T0 + 90 * SECOND, url=OTHER),
    line("scroll", T0 + 95 * SECOND, scroll_pct=55, url=OTHER),
]


def backtest(lines: list[bytes]) -> Result:
    result = Result()
    run(read_events(lines, result), RULES, Limits(), result)
    check_outputs(result.decisions, result.invitations)
    return result


def test_events_out_of_order_give_the_same_output_as_in_order() -> None:
    in_order = backtest(sorted(LINES, key=lambda raw: orjson.loads(raw)["ts"]))

    shuffled = backtest(list(reversed(LINES)))

    assert (shuffled.decisions, shuffled.invitations) == (in_order.decisions, in_order.invitations)


def test_backtest_fires_what_is_pending_at_the_end_of_input() -> None:
    result = backtest([line("page_view", T0)])

    assert [i["triggered_at"] for i in result.invitations] == ["2026-12-01T10:00:20.000Z"]


def test_backtest_output_is_in_the_order_of_instants() -> None:
    result = backtest(LINES)

    instants = [d["triggered_at"] for d in result.decisions]
    assert instants == sorted(instants) and len(instants) == 5


def test_bad_lines_are_counted_and_reported_with_their_line_number() -> None:
    lines = [
        line("page_view", T0),
        b"not json",
        b'{"type": "page_view", "visitor_id": "v1"}',
        line("page_ping", T0 + 10 * SECOND),
    ]

    result = backtest(lines)

    assert (
        result.bad_lines,
        [example.split(":")[0] for example in result.bad_examples],
        result.events,
        len(result.invitations),
    ) == (2, ["line 2", "line 3"], 2, 1)


def test_blank_lines_are_neither_events_nor_bad() -> None:
    result = backtest([line("page_view", T0), b"", b"   \n"])

    assert (result.events, result.bad_lines) == (1, 0)


def test_repeated_line_is_a_duplicate_event() -> None:
    two_pages = rules(
        """
        rules:
          - {id: two, trigger: {pages_in_session: 2}, message: {text: "Hi"}}
        """
    )
    result = Result()

    run(read_events([line("page_view", T0)] * 2, result), two_pages, Limits(), result)

    assert result.decisions == []


def test_summary_counts_what_shadow_rules_would_have_done() -> None:
    both = rules(
        """
        rules:
          - {id: live, trigger: {dwell_seconds: 20}, message: {text: "A"}}
          - {id: trial, mode: shadow, priority: 9, trigger: {dwell_seconds: 20},
             message: {text: "B"}}
          - {id: trial-later, mode: shadow, trigger: {dwell_seconds: 40}, message: {text: "C"}}
        """
    )
    result = Result()
    run(read_events(LINES, result), both, Limits(), result)

    rows = summary(result, both).splitlines()

    assert rows[0].split() == ["rule", "matched", "invited", "shadow", "suppressed"]
    # v1 views a second page in the session: per_session for both; the later shadow
    # rule comes 20 s after the live invitations, within the live min_gap.
    assert [row.split() for row in rows[1:4]] == [
        ["trial", "3", "0", "2", "per_session", "1"],
        ["live", "3", "2", "0", "per_session", "1"],
        ["trial-later", "2", "0", "0", "min_gap", "2"],
    ]
