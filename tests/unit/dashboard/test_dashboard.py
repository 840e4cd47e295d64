"""The dashboard's aggregation: literal records in, the summary's numbers out."""

from __future__ import annotations

from typing import Any

import orjson

from streams.core.dwell import PageWindow, encode_key
from streams.dashboard.board import Board, WindowedCounts, lag_rows, rate, why

T0 = 1_764_579_600_000  # 2025-12-01T09:00:00Z
HOUR = 3_600_000


def _decision(rule: str, n: int, outcome: str = "invited", reason: str | None = None) -> bytes:
    return orjson.dumps({"invitation_id": f"{rule}-{n}", "rule_id": rule, "visitor_id": f"v{n}",
                         "outcome": outcome, "reason": reason})  # fmt: skip


def _invitation(rule: str, n: int, **context: Any) -> bytes:
    return orjson.dumps({"invitation_id": f"{rule}-{n}", "rule_id": rule, "visitor_id": f"v{n}",
                         "url": "https://shop.example/pricing", "context": context,
                         "triggered_at": "2025-12-01T09:00:00.000Z"})  # fmt: skip


def _response(invitation_id: str, response: str) -> bytes:
    return orjson.dumps({"event_id": f"{invitation_id}-{response}", "type": "invitation_response",
                         "visitor_id": "v", "site_id": "shop", "ts": T0,
                         "invitation_id": invitation_id, "response": response})  # fmt: skip


def _row(board: Board, rule: str, now: int = T0) -> dict[str, Any]:
    return next(r for r in board.summary(now)["funnel"] if r["rule_id"] == rule)


def test_funnel_counts_matched_suppressed_by_reason_invited_and_holdout() -> None:
    board = Board(HOUR)
    for n in range(5):
        board.decision(T0, _decision("pricing", n))
    board.decision(T0, _decision("pricing", 5, "suppressed", "holdout"))
    board.decision(T0, _decision("pricing", 6, "suppressed", "min_gap"))
    board.decision(T0, _decision("pricing", 7, "suppressed", "min_gap"))
    board.decision(T0, _decision("cart", 8, "suppressed", "lower_priority"))
    board.decision(T0, _decision("pricing", 0))  # a copy after a crash: same id, once

    pricing = _row(board, "pricing")
    assert (pricing["matched"], pricing["invited"], pricing["holdout"]) == (8, 5, 1)
    assert pricing["suppressed"] == {"holdout": 1, "min_gap": 2}
    assert pricing["holdout_share"] == round(1 / 6, 4)
    totals = board.summary(T0)["totals"]
    assert totals["matched"] == 9
    assert totals["suppressed"] == {"holdout": 1, "lower_priority": 1, "min_gap": 2}
    assert [r["rule_id"] for r in board.summary(T0)["funnel"]] == ["pricing", "cart"]


def test_funnel_counts_what_a_shadow_rule_would_have_done() -> None:
    board = Board(HOUR)
    for n in range(3):
        board.decision(T0, _decision("trial", n, "shadow"))
    board.decision(T0, _decision("trial", 3, "shadow", "per_session"))
    board.decision(T0, _decision("trial", 4, "shadow", "holdout"))
    board.decision(T0, _decision("pricing", 5))

    trial = _row(board, "trial")
    assert (trial["matched"], trial["shadow"], trial["invited"]) == (5, 3, 0)
    assert trial["suppressed"] == {"holdout": 1, "per_session": 1}
    # The holdout column is the control group of invitations really sent.
    assert (trial["holdout"], trial["holdout_share"]) == (0, None)
    assert _row(board, "pricing")["shadow"] == 0
    totals = board.summary(T0)["totals"]
    assert (totals["shadow"], totals["invited"]) == (3, 1)


def test_funnel_counts_what_a_queues_budget_held_back() -> None:
    board = Board(HOUR)
    board.decision(T0, _decision("quote", 0))
    board.decision(T0, _decision("quote", 1, "suppressed", "budget"))
    board.decision(T0, _decision("quote", 2, "suppressed", "budget"))
    board.decision(T0, _decision("pricing", 3, "suppressed", "budget"))
    board.decision(T0, _decision("pricing", 4, "suppressed", "no_capacity"))

    quote = _row(board, "quote")
    assert (quote["matched"], quote["invited"], quote["suppressed"]) == (3, 1, {"budget": 2})
    assert _row(board, "pricing")["suppressed"] == {"budget": 1, "no_capacity": 1}
    assert board.summary(T0)["totals"]["suppressed"] == {"budget": 3, "no_capacity": 1}


def test_responses_count_once_per_invitation_and_any_response_means_shown() -> None:
    board = Board(HOUR)
    for n in range(4):
        board.invitation(T0, _invitation("pricing", n))
    board.click(T0, _response("pricing-0", "shown"))
    board.click(T0, _response("pricing-0", "accepted"))
    board.click(T0, _response("pricing-0", "accepted"))  # a retried event
    board.click(T0, _response("pricing-1", "declined"))  # no `shown` first: still seen
    board.click(T0, _response("pricing-2", "shown"))
    board.click(T0, _response("unknown-9", "accepted"))  # never invited in the lookback
    board.click(T0, b'{"type": "page_view", "visitor_id": "v"}')

    row = _row(board, "pricing")
    assert (row["shown"], row["accepted"], row["declined"]) == (3, 1, 1)
    assert row["acceptance"] == round(1 / 3, 4)
    assert board.summary(T0)["totals"]["accepted"] == 1


def test_a_response_read_before_its_invitation_counts_once_the_invitation_arrives() -> None:
    board = Board(HOUR)
    board.click(T0, _response("pricing-0", "accepted"))
    assert board.summary(T0)["funnel"] == []
    board.decision(T0, _decision("pricing", 0))
    row = _row(board, "pricing")
    assert (row["invited"], row["shown"], row["accepted"]) == (1, 1, 1)
    board.invitation(T0, _invitation("pricing", 0))  # the same invitation: nothing more
    assert _row(board, "pricing")["accepted"] == 1


def test_clickstream_without_the_marker_is_never_decoded() -> None:
    board = Board(HOUR)
    board.click(T0, b"not json at all")
    board.click(T0, b'{"type": "invitation_response", broken')
    assert board.unreadable == {"clickstream": 1}


def test_counts_older_than_the_lookback_are_forgotten() -> None:
    board = Board(HOUR)
    board.decision(T0, _decision("pricing", 1))
    board.decision(T0 + HOUR // 2, _decision("pricing", 2))
    assert _row(board, "pricing", now=T0 + HOUR // 2)["matched"] == 2
    assert _row(board, "pricing", now=T0 + HOUR + 2 * 60_000)["matched"] == 1
    assert board.summary(T0 + 3 * HOUR)["funnel"] == []


def test_windowed_counts_hold_a_bounded_number_of_buckets() -> None:
    counts = WindowedCounts(HOUR, buckets=60)
    assert counts.bucket_ms == 60_000
    for minute in range(10 * 60):  # ten hours of traffic, one count a minute
        counts.add(T0 + minute * 60_000, ("r", "matched"))
        counts.totals(T0 + minute * 60_000)
    assert len(counts) <= 61
    # The lookback is rounded out to whole buckets: the oldest one overlaps it.
    assert counts.totals(T0 + 599 * 60_000)[("r", "matched")] == 61
    skewed = WindowedCounts(HOUR, buckets=60)
    for minute in range(1000):  # far-future timestamps: never pruned by totals, still capped
        skewed.add(T0 + minute * 60_000, ("r", "matched"))
    assert len(skewed) <= skewed.max_buckets


def test_ids_and_lists_are_bounded() -> None:
    board = Board(HOUR, remembered=100, latest=5, dlq_latest=3)
    for n in range(1000):
        board.decision(T0, _decision("pricing", n))
        board.invitation(T0, _invitation("pricing", n))
        board.click(T0, _response(f"nobody-{n}", "accepted"))
        board.dead_letter(T0, b"k", b"x", [("beckon.reason", b"invalid")])
    assert len(board.tracked) == 100 and len(board.decisions_seen) == 100
    assert len(board.early) <= 10
    assert [i["invitation_id"] for i in board.latest] == [
        f"pricing-{n}" for n in range(999, 994, -1)
    ]
    assert len(board.dead) == 3
    assert board.summary(T0)["dlq"]["by_reason"] == {"invalid": 1000}


def test_rates_come_from_end_offset_samples() -> None:
    assert rate([(T0, 100), (T0 + 2000, 300), (T0 + 4000, 300), (T0 + 6000, 310)]) == [
        100.0, 0.0, 5.0]  # fmt: skip
    assert rate([(T0, 500), (T0 + 2000, 0)]) == [0.0]  # a re-created topic: never negative
    board = Board(HOUR, samples=3)
    for k, total in enumerate([0, 40, 100, 160]):
        board.end_offsets(T0 + k * 2000, "events", total)
    assert board.summary(T0)["rates"]["events"] == {"per_s": 30.0, "series": [30.0, 30.0],
                                                    "total": 160}  # fmt: skip


def test_lag_is_end_minus_committed_and_all_of_a_never_committed_partition() -> None:
    rows = lag_rows(
        {("clicks", 0): 90, ("clicks", 1): None, ("clicks", 2): None, ("clicks", 3): None},
        {("clicks", 0): 100, ("clicks", 1): 7, ("clicks", 2): 12, ("clicks", 3): 0},
        {("clicks", 2): 10},  # partition 2's first 10 records are gone (retention)
    )
    assert rows == [
        {"topic": "clicks", "partition": 0, "committed": 90, "end": 100, "lag": 10},
        {"topic": "clicks", "partition": 1, "committed": None, "end": 7, "lag": 7},
        {"topic": "clicks", "partition": 2, "committed": None, "end": 12, "lag": 2},
        {"topic": "clicks", "partition": 3, "committed": None, "end": 0, "lag": 0},
    ]
    board = Board(HOUR)
    board.set_lag(rows)
    assert board.summary(T0)["lag"]["total"] == 19


def test_dlq_counts_by_reason_and_keeps_the_latest_first() -> None:
    board = Board(HOUR)
    for n, reason in enumerate(["invalid", "too_large", "invalid"]):
        headers = [("beckon.reason", reason.encode()), ("beckon.error", b"bad"),
                   ("beckon.source", f"clicks[0]@{n}".encode())]  # fmt: skip
        board.dead_letter(T0 + n, b"v1", b"not json", headers)
    board.dead_letter(T0, None, None, [])
    dlq = board.summary(T0)["dlq"]
    assert dlq["by_reason"] == {"invalid": 2, "too_large": 1, "unknown": 1}
    assert dlq["total"] == 4
    assert [d["source"] for d in dlq["latest"][1:]] == ["clicks[0]@2", "clicks[0]@1", "clicks[0]@0"]


def _dwell(board: Board, page: str, window: int, dwell_ms: int, views: int) -> None:
    agg = PageWindow()
    agg.page_views, agg.dwell_ms = views, dwell_ms
    key = ("shop", page, window)
    board.dwell_record(encode_key(key), orjson.dumps(agg.to_record(*key, 60_000)))


def test_top_pages_sum_the_latest_windows_and_tombstones_remove_one() -> None:
    board = Board(HOUR, dwell_windows=2, top_pages=2)
    _dwell(board, "/old", T0, 999_000, 9)  # outside the latest two windows
    _dwell(board, "/a", T0 + 60_000, 10_000, 1)
    _dwell(board, "/b", T0 + 60_000, 30_000, 2)
    _dwell(board, "/a", T0 + 120_000, 25_000, 3)
    _dwell(board, "/c", T0 + 120_000, 1_000, 1)
    top = board.top_pages()
    assert [(p["page"], p["dwell_ms"], p["page_views"]) for p in top["pages"]] == [
        ("/a", 35_000, 4), ("/b", 30_000, 2)]  # fmt: skip
    assert (top["from"], top["to"]) == ("2025-12-01T09:01:00.000Z", "2025-12-01T09:03:00.000Z")
    board.dwell_record(encode_key(("shop", "/a", T0 + 120_000)), None)
    assert [p["page"] for p in board.top_pages()["pages"]] == ["/b", "/a"]
    assert board.unreadable == {}


def test_a_dwell_record_that_is_not_a_page_dwell_is_unreadable_and_replaces_nothing() -> None:
    board = Board(HOUR)
    _dwell(board, "/a", T0, 10_000, 1)
    key = encode_key(("shop", "/a", T0))
    good = orjson.loads(orjson.dumps(PageWindow().to_record("shop", "/a", T0, 60_000)))
    for bad in ({**good, "dwell_ms": -1}, {k: v for k, v in good.items() if k != "ended"},
                {**good, "histogram": {"7 s": 1}}, [good]):  # fmt: skip
        board.dwell_record(key, orjson.dumps(bad))
    board.dwell_record(key, b"not json")
    assert board.unreadable == {"dwell": 5}
    assert [(p["page"], p["dwell_ms"]) for p in board.top_pages()["pages"]] == [("/a", 10_000)]


def test_why_names_the_facts_an_invitation_fired_on() -> None:
    context = {"dwell_seconds": 31.5, "session_seconds": 120, "pages_in_session": 3,
               "scroll_pct": 50, "page_events": ["exit_intent"],
               "audience": {"visits": 2}}  # fmt: skip
    assert why(context) == (
        "dwell 31.5 s · session 120 s · 3 pages · scroll 50% · events exit_intent · visits=2"
    )
    board = Board(HOUR)
    board.invitation(T0, _invitation("pricing", 1, dwell_seconds=20))
    [latest] = board.summary(T0)["latest_invitations"]
    assert latest["why"] == "dwell 20 s" and latest["url"] == "https://shop.example/pricing"


def test_a_long_funnel_keeps_what_the_hour_has_forgotten() -> None:
    """The console's funnel (24 h) beside the dashboard's (1 h), from the same records."""
    board = Board(HOUR, long_lookback_ms=24 * HOUR)
    board.decision(T0, _decision("pricing", 1))
    board.decision(T0 + 5 * HOUR, _decision("pricing", 2, "suppressed", "per_session"))
    now = T0 + 5 * HOUR
    (short,) = board.funnel_rows(now)
    (long,) = board.funnel_rows(now, long=True)
    assert (short["matched"], short["invited"], short["suppressed"]) == (1, 0, {"per_session": 1})
    assert (long["matched"], long["invited"], long["suppressed"]) == (2, 1, {"per_session": 1})
    assert board.funnel_rows(T0 + 30 * HOUR, long=True) == []
    # Without a long lookback, the long funnel is the short one.
    plain = Board(HOUR)
    plain.decision(T0, _decision("pricing", 1))
    assert plain.funnel_rows(T0, long=True) == plain.funnel_rows(T0)
