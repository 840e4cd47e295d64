"""Event time on the real broker (docs/event-time.md): producers whose clocks are an hour
fast, visitors whose clocks are hours slow, and a SIGKILL and restart on a group and state
dir with history. Each run's invitations, read from the invitations topic with copies
dropped, are exactly ``beckon backtest``'s of the same events, by invitation_id and
triggered_at: none missing, none extra.

The events are historical (``bench.clickstream.generate``), so the worker replays them: its
clock advances with the records, and after the last only once Kafka confirms the
partition is read to the end and idle for ``BECKON_CLOCK_IDLE_S``. Each stream ends with
a few page views an hour later on every partition (``closing``), so the instants still
planned fire by records, not after minutes of wall time.

The worker handles small batches (``BECKON_BATCH_MAX``), and the runs "read a record at a
time" one record a batch: its timers run between batches, so an instant fired before an
event of its visitor still to be read shows. Those two runs, on quiet streams whose
partition clock (a median over the last 16 visitors) lags the stream by an hour, are the
lagging clock catching up of docs/reliability.md, for a visitor whose clock is right or
ahead and for one whose clock is behind (``streams.core.clock.seen_at``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from bench.clickstream import RULES_YAML, generate
from bench.site import ORIGIN, SITE_ID
from streams.settings import Settings
from streams.worker.tables import partition_of
from tests.integration.helpers import (
    backtest_invitations,
    kill_worker,
    positions,
    publish_lines,
    read_invitations,
    read_topic,
    start_worker,
    stop_workers,
)

pytestmark = pytest.mark.integration

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_764_576_000_000  # generate's default start
UNTARGETED = f"{ORIGIN}/contact"  # no rule's location, and one page view starts no journey
TARGETED = f"{ORIGIN}/pricing"  # pricing-hesitation: 30 s of dwell
LINGER_S = 4.0  # after the last expected invitation: time for any extra one to come
# Small batches, as a worker reading events as they arrive handles them: the timers run
# between batches, so an instant that fires too early has every chance to.
BATCH_MAX = "10"


# --- streams ------------------------------------------------------------------------------


def _visitor(line: bytes) -> str:
    return str(orjson.loads(line)["visitor_id"])


def _ts(line: bytes) -> int:
    return int(orjson.loads(line)["ts"])


def _page_view(visitor: str, ts: int, url: str) -> bytes:
    return orjson.dumps({"event_id": f"{visitor}-0", "type": "page_view", "visitor_id": visitor,
                         "site_id": SITE_ID, "ts": ts, "url": url})  # fmt: skip


def _partition(visitor: str, settings: Settings) -> int:
    return partition_of(visitor.encode(), settings.partitions)


def closing(lines: list[bytes], name: str, settings: Settings) -> list[bytes]:
    """One page view (on a page no rule targets) of each of 16 new visitors per partition,
    an hour after the last of ``lines``: the stream moves on, past every instant still
    planned, which then fire by records instead of wall time after the end."""
    at, per_partition = max(map(_ts, lines)) + HOUR, Counter[int]()
    visitors: list[str] = []
    n = 0
    while len(visitors) < 16 * settings.partitions:
        visitor, n = f"{name}-{n}", n + 1
        partition = _partition(visitor, settings)
        if per_partition[partition] < 16:
            per_partition[partition] += 1
            visitors.append(visitor)
    return [_page_view(v, at + i, UNTARGETED) for i, v in enumerate(visitors)]


def with_fast_producers(lines: list[bytes], url: str, share: float = 0.05) -> list[bytes]:
    """``lines`` with ``share`` more visitors, each one page view an hour ahead of the
    stream, published one after the other a quarter of the way in, as a producer whose
    clock runs an hour fast would."""
    cut = len(lines) // 4
    fast = round(share * len({_visitor(line) for line in lines}))
    at = _ts(lines[cut - 1]) + HOUR
    return [*lines[:cut], *(_page_view(f"fast-{n}", at + n, url) for n in range(fast)),
            *lines[cut:]]  # fmt: skip


def slowest(lines: list[bytes], count: int) -> set[str]:
    """The ``count`` visitors with the most events on pages whose dwell rules fire
    (pricing, cart, products): the ones an early or late instant would change."""
    busy = Counter(
        event["visitor_id"]
        for event in map(orjson.loads, lines)
        if any(page in event["url"] for page in ("/pricing", "/cart", "/products/"))
    )
    return {visitor for visitor, _ in busy.most_common(count)}


def shifted(lines: list[bytes], visitors: set[str], by_ms: int) -> list[bytes]:
    """``lines``, in the same order, with the events of ``visitors`` ``by_ms`` later (or
    earlier): their producers' clocks are off; they stay interleaved with the others."""
    out = []
    for line in lines:
        event = orjson.loads(line)
        if event["visitor_id"] in visitors:
            event["ts"] += by_ms
            line = orjson.dumps(event)
        out.append(line)
    return out


# --- checks -------------------------------------------------------------------------------


def _rules_file(tmp_path: Path) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    return rules


def assert_backtests(
    got: dict[str, str], expected: dict[str, str], lines: list[bytes], log: Path
) -> None:
    """0 missing, 0 extra, by invitation_id, each at the backtest's triggered_at; else the
    ids, their instants, and the tail of the worker's log."""
    missing = {i: t for i, t in expected.items() if i not in got}
    extra = {i: t for i, t in got.items() if i not in expected}
    moved = {i: (t, got[i]) for i, t in expected.items() if i in got and got[i] != t}
    print(f"{len(expected)} expected, {len(got)} on the topic, {len(missing)} missing, "
          f"{len(extra)} extra, {len(moved)} at another instant")  # fmt: skip
    if missing or extra or moved:
        tail = log.read_text(errors="replace")[-3000:]
        raise AssertionError(
            f"of {len(expected)} invitations ({len(lines)} events): {len(missing)} missing "
            f"{sorted(missing.items())[:10]}, {len(extra)} extra {sorted(extra.items())[:10]}, "
            f"{len(moved)} at another instant {sorted(moved.items())[:10]}\n{tail}"
        )


def replay(
    live: tuple[Settings, dict[str, str]],
    tmp_path: Path,
    lines: list[bytes],
    expected: dict[str, str],
    batch_max: str = BATCH_MAX,
) -> tuple[dict[str, str], Path]:
    """One worker over ``lines``, published before it starts (a backlog: the clock never
    sees a pause it would take for the end); its invitations."""
    settings, env = live
    env = {**env, "BECKON_CLOCK_IDLE_S": "1", "BECKON_BATCH_MAX": batch_max}
    publish_lines(settings, lines)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = start_worker(env, _rules_file(tmp_path), log)
        try:
            got = read_invitations(settings, expected, timeout_s=60, linger_s=LINGER_S)
        finally:
            stop_workers(worker)
    return got, log_path


# --- the runs -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [UNTARGETED, TARGETED], ids=["untargeted", "targeted"])
def test_producers_an_hour_fast_do_not_move_the_others_instants(
    live: tuple[Settings, dict[str, str]], tmp_path: Path, url: str
) -> None:
    settings, _ = live
    base = list(generate(4_000, 400, seed=19))
    end = closing(base, "closing", settings)
    lines = with_fast_producers(base, url) + end
    # A few of the last 16 visitors on each partition are fast, never half of them.
    cut = len(base) // 4
    fast = Counter(_partition(_visitor(line), settings)
                   for line in lines if _visitor(line).startswith("fast-"))  # fmt: skip
    before = Counter(_partition(v, settings) for v in {_visitor(line) for line in base[:cut]})
    assert sum(fast.values()) == 20
    assert all(fast[p] <= 7 and before[p] >= 16 for p in range(settings.partitions)), (fast, before)
    expected = backtest_invitations(lines)
    if url == TARGETED:  # the fast visitors' own dwell instants fire, an hour ahead
        assert len(expected) >= len(backtest_invitations(base + end)) + 10

    got, log = replay(live, tmp_path, lines, expected)

    assert_backtests(got, expected, lines, log)


def test_producers_an_hour_fast_on_a_quiet_stream_read_a_record_at_a_time(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """As above, on another stream, a record a batch. Visitor v-14aec8d1a1e17986
    (partition 2) views a product page 45 s before 13:18:24.591 and leaves it 7.8 s
    before: no invitation in the backtest. The fast visitors come while it is on the
    page and push out of the partition's last 16 the visitors seen longest ago, hours
    back: the median, hours behind the stream, jumps by hours. Timed from that lagging
    median, the worker fired product-long-dwell (efc478ac-ebd3-5c7d-b494-e0ac0b58b228)
    before it read the page_leave, until visitors were timed from no earlier than their
    own latest event (docs/reliability.md, "Instants fire early when a lagging partition
    clock catches up")."""
    settings, _ = live
    base = list(generate(3_000, 300, seed=11))
    lines = with_fast_producers(base, UNTARGETED) + closing(base, "closing", settings)
    expected = backtest_invitations(lines)

    got, log = replay(live, tmp_path, lines, expected, batch_max="1")

    assert_backtests(got, expected, lines, log)


def test_visitors_hours_slow_get_their_own_timing(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, _ = live
    base = list(generate(3_000, 300, seed=19))
    lines = shifted(base, slowest(base, 10), -3 * HOUR)
    lines += closing(lines, "closing", settings)
    expected = backtest_invitations(lines)
    assert len(expected) > 20

    got, log = replay(live, tmp_path, lines, expected)

    assert_backtests(got, expected, lines, log)


def test_visitors_hours_slow_on_a_quiet_stream_read_a_record_at_a_time(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """As above, on another stream, a record a batch. Visitor v-464bcd4499fadb7c, three
    hours slow (partition 0), lands from paid search at 13:15:09.811 by its clock, views
    two more pages and leaves at 13:16:03.810: paid-search-landing's instant, 60 s into
    the session (13:16:09.811), finds it gone, and the backtest invites no one. Its own
    time is behind the partition's clock, so it is timed from that clock, the median of
    the last 16 visitors, which lags the stream by an hour (15:08:22.907 against
    16:16). The page view of a new visitor (v-f675bc2b8cd7f2d5, 16:16:03.667), the
    record before the page_leave, pushes out a visitor seen long ago and the median
    jumps 16 minutes (to 15:24:15.382), far past the 10 s the instant needed: timed from
    the lagging clock, the worker invited the visitor before it read the page_leave. It
    is timed from the newest event time read instead."""
    settings, _ = live
    base = list(generate(4_000, 400, seed=13))
    lines = shifted(base, slowest(base, 10), -3 * HOUR)
    lines += closing(lines, "closing", settings)
    expected = backtest_invitations(lines)

    got, log = replay(live, tmp_path, lines, expected, batch_max="1")

    assert_backtests(got, expected, lines, log)


def test_sigkill_and_restart_on_a_state_dir_with_history_gives_the_backtests_invitations(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """A first stream, read to its end and the worker stopped; then a second one, two days
    EARLIER, published in two halves: the worker is SIGKILLed part-way through the first
    half, and restarted on the same group and state dir once the second is published.

    Every restart recovers journeys ahead of the records it reads: the first stream's
    (two days ahead), and the second's own, saved after each batch while Faust commits
    the offsets every second."""
    settings, env = live
    env = {**env, "BECKON_BATCH_MAX": BATCH_MAX, "BECKON_BROKER_SESSION_TIMEOUT_S": "8"}
    rules = _rules_file(tmp_path)
    first = list(generate(2_000, 200, seed=31))
    first += closing(first, "closing-first", settings)
    second = list(generate(3_000, 300, seed=37, start_ms=START - 2 * DAY))
    half = len(second) // 2
    second += closing(second, "closing-second", settings)
    expected_first = backtest_invitations(first)
    expected = backtest_invitations(first + second)
    assert len(expected) > len(expected_first) + 20
    log_path = tmp_path / "worker.log"
    publish_lines(settings, first)
    with log_path.open("wb") as log:
        worker = start_worker({**env, "BECKON_CLOCK_IDLE_S": "1"}, rules, log)
        try:
            read_invitations(settings, expected_first, timeout_s=60)
        finally:
            stop_workers(worker)
        publish_lines(settings, second[:half])
        # No idle advance before the kill: a replay that pauses for BECKON_CLOCK_IDLE_S
        # is taken as ended, and its last instants fire (by design, not what is tested).
        worker = start_worker({**env, "BECKON_CLOCK_IDLE_S": "120"}, rules, log)
        try:  # killed as soon as the second stream's first invitations are out
            read_topic(settings, settings.topic_invitations, len(expected_first) + 1,
                       timeout_s=60)  # fmt: skip
        finally:
            kill_worker(worker)
        committed, ends = positions(settings, settings.topic_clickstream)
        print(f"killed with {sum(committed.values())} of {sum(ends.values())} records committed")
        assert sum(committed.values()) < sum(ends.values()), "the kill came after the backlog"
        publish_lines(settings, second[half:])
        worker = start_worker({**env, "BECKON_CLOCK_IDLE_S": "1"}, rules, log)
        try:
            got = read_invitations(settings, expected, timeout_s=60, linger_s=LINGER_S)
        finally:
            stop_workers(worker)

    assert_backtests(got, expected, first + second, log_path)
