"""The pure helpers of the live-worker benchmark (``bench.live``); nothing here needs Kafka."""

from __future__ import annotations

import math

import orjson
import pytest

from bench.live import (
    cpu_since,
    group_sizes,
    paced_schedule,
    per_event_us,
    percentile,
    rate_between,
    retimed,
    spread,
)


def test_percentile_is_the_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 9.0, 8.0, 7.0, 6.0]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile(values, 99) == 10.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 1) == 1.0


def test_percentile_of_one_value_is_that_value_and_of_none_is_nan() -> None:
    assert percentile([-3.0], 99) == -3.0
    assert math.isnan(percentile([], 50))


def test_rate_counts_from_the_first_move_to_the_first_sample_at_the_end() -> None:
    # committed offsets as polled: nothing, first commit at 2 s, the end reached at 6 s
    samples = [(0.0, 0), (1.0, 0), (2.0, 1_000), (4.0, 5_000), (6.0, 9_000), (7.0, 9_000)]
    assert rate_between(samples, 1, 9_000) == 2_000.0  # (9,000 - 1,000) / (6 - 2)
    assert rate_between(samples, 900, 8_100) == 2_000.0  # 10% to 90%: 2 s to 6 s again


def test_rate_is_none_until_the_end_is_reached() -> None:
    assert rate_between([(0.0, 0), (1.0, 500)], 1, 1_000) is None
    assert rate_between([(0.0, 0), (1.0, 0)], 1, 1_000) is None
    assert rate_between([(1.0, 1_000)], 1, 1_000) is None  # one sample: no interval


def test_retimed_replaces_only_ts() -> None:
    raw = b'{"event_id":"e1","type":"page_ping","visitor_id":"v1","ts":1000,"url":"u"}'
    event = orjson.loads(retimed(raw, 1_795_000_000_123))
    assert event == {"event_id": "e1", "type": "page_ping", "visitor_id": "v1",
                     "ts": 1_795_000_000_123, "url": "u"}  # fmt: skip


def test_schedule_keeps_relative_spacing_scaled_to_the_run() -> None:
    # 30 s of event time played over 15 s: twice as fast, gaps halved
    timed = [(10_000, b"a", b"1"), (16_000, b"b", b"2"), (16_000, b"a", b"3"), (40_000, b"b", b"4")]
    schedule, speedup = paced_schedule(timed, seconds=15)
    assert speedup == 2.0
    assert schedule == [(0, b"a", b"1"), (3_000, b"b", b"2"), (3_000, b"a", b"3"),
                        (15_000, b"b", b"4")]  # fmt: skip


def test_schedule_of_one_instant_or_nothing() -> None:
    assert paced_schedule([(5, b"k", b"v"), (5, b"k", b"w")], 10) == (
        [(0, b"k", b"v"), (0, b"k", b"w")],
        1.0,
    )
    assert paced_schedule([], 10) == ([], 1.0)


def test_group_sizes_keep_their_order_each_once() -> None:
    assert group_sizes("1,2,4") == [1, 2, 4]
    assert group_sizes(" 4, 1 ,4,") == [4, 1]
    assert group_sizes("3") == [3]


@pytest.mark.parametrize("text", ["", ",", "0,2", "1,-2", "two", "1.5"])
def test_group_sizes_are_whole_numbers_from_one(text: str) -> None:
    with pytest.raises(ValueError):
        group_sizes(text)


def test_cpu_counts_from_each_workers_ready_and_nothing_of_one_never_ready() -> None:
    # start-up 3.0 and 3.5 s apart; the third worker was not Ready by the end
    assert cpu_since([3.0, 3.5, math.nan], [10.0, 6.0, 4.0]) == 9.5
    assert cpu_since([math.nan], [4.0]) == 0
    with pytest.raises(ValueError):
        cpu_since([1.0], [2.0, 3.0])


def test_cpu_per_event_in_microseconds_and_nan_for_no_events() -> None:
    assert per_event_us(1.5, 30_000) == 50.0
    assert math.isnan(per_event_us(1.5, 0))


def test_spread_is_the_largest_over_the_smallest() -> None:
    assert spread([50.0, 55.0, 52.0]) == pytest.approx(0.1)
    assert spread([70.0]) == 0
    assert math.isnan(spread([]))
    assert math.isnan(spread([50.0, math.nan]))
    assert math.isnan(spread([50.0, 0.0]))
