"""The partition clock: what one bad clock, a replay, a backlog or an outage do to it."""

from __future__ import annotations

from streams.core.clock import PartitionClock, due, seen_at, visitor_time

T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z: a replay, far from the wall clock below
WALL = 1_800_000_000_000
SECOND, HOUR = 1_000, 3_600_000


def replayed(clock: PartitionClock, *events: tuple[bytes, int], wall: int = WALL) -> None:
    for visitor, ts in events:
        clock.saw(visitor, ts, wall)


def test_one_visitor_far_ahead_does_not_move_the_clock() -> None:
    clock = PartitionClock()
    replayed(clock, (b"a", T0), (b"b", T0 + SECOND), (b"c", T0 + 2 * SECOND))
    replayed(clock, (b"fast", T0 + HOUR))  # a producer whose clock runs an hour fast
    replayed(clock, (b"d", T0 + 3 * SECOND))

    assert clock.now(WALL) == T0 + 2 * SECOND


def test_a_few_visitors_ahead_among_many_do_not_move_it_either() -> None:
    clock = PartitionClock()
    for i in range(40):
        visitor = f"fast{i}" if i % 8 == 0 else f"v{i}"
        replayed(clock, (visitor.encode(), T0 + i * SECOND + (HOUR if i % 8 == 0 else 0)))

    assert clock.now(WALL) is not None
    assert clock.now(WALL) < T0 + 40 * SECOND


def test_the_clock_follows_the_stream_when_most_visitors_move_on() -> None:
    clock = PartitionClock()
    replayed(clock, *[(f"v{i}".encode(), T0 + i * SECOND) for i in range(16)])
    # Overnight: the next visitors are all hours later. A gap in a replay is no outlier.
    replayed(clock, *[(f"w{i}".encode(), T0 + 8 * HOUR + i * SECOND) for i in range(9)])

    assert clock.now(WALL) == T0 + 8 * HOUR


def test_once_settled_the_clock_never_runs_backwards() -> None:
    clock = PartitionClock()
    replayed(clock, (b"a", T0 + 10 * SECOND), (b"b", T0 + 10 * SECOND), (b"c", T0 + 10 * SECOND))
    replayed(clock, (b"d", T0), (b"e", T0), (b"f", T0), (b"g", T0))  # the median drops

    assert clock.now(WALL) == T0 + 10 * SECOND


def test_a_first_visitor_far_ahead_is_forgotten_when_the_others_come() -> None:
    clock = PartitionClock()
    replayed(clock, (b"fast", T0 + HOUR))
    replayed(clock, (b"a", T0), (b"b", T0 + SECOND))

    assert clock.now(WALL) == T0 + SECOND


def test_a_replay_waits_for_records_while_reads_are_not_confirmed_caught_up() -> None:
    clock = PartitionClock(idle_ms=5 * SECOND)
    replayed(clock, (b"a", T0))

    assert clock.now(WALL + 60 * SECOND) == T0  # a broker outage looks like this too
    clock.caught_up(WALL + 60 * SECOND)
    assert clock.now(WALL + 64 * SECOND) == T0  # idle, but not for 5 s yet
    assert clock.now(WALL + 67 * SECOND) == T0 + 7 * SECOND


def test_live_records_let_the_clock_run_with_the_wall_clock_at_once() -> None:
    clock = PartitionClock(live_window_ms=60 * SECOND)
    clock.saw(b"a", WALL - 200, WALL)  # event time within a minute of the wall clock

    assert clock.now(WALL + 3 * SECOND) == WALL - 200 + 3 * SECOND


def test_falling_behind_stops_the_idle_advance_and_keeps_what_it_gained() -> None:
    clock = PartitionClock(idle_ms=SECOND)
    replayed(clock, (b"a", T0))
    clock.caught_up(WALL)
    clock.behind(WALL + 3 * SECOND)  # new records, or Kafka did not answer

    assert clock.now(WALL + 30 * SECOND) == T0 + 3 * SECOND


def test_a_restart_resumes_from_the_saved_clock_only_when_nothing_is_left_to_read() -> None:
    backlog = PartitionClock()
    backlog.restore([(b"v", T0 + HOUR)])  # journeys saved ahead of what is still unread
    replayed(backlog, (b"a", T0))
    assert backlog.now(WALL) == T0

    idle = PartitionClock(idle_ms=SECOND)
    idle.restore([(b"v", T0 + HOUR)])
    assert idle.now(WALL) is None
    idle.caught_up(WALL)
    assert idle.now(WALL + 2 * SECOND) == T0 + HOUR + 2 * SECOND


def test_a_restart_resumes_from_the_median_of_the_last_visitors_read() -> None:
    clock = PartitionClock(idle_ms=SECOND)
    # Two of the last visitors read before the restart had clocks hours fast.
    clock.restore([(b"f1", T0 + 3 * HOUR), (b"a", T0 - SECOND), (b"b", T0),
                   (b"f2", T0 + 3 * HOUR), (b"c", T0 + SECOND)])  # fmt: skip
    clock.caught_up(WALL)

    assert clock.now(WALL) == T0 + SECOND


def test_a_restarted_replay_that_ended_runs_on_from_its_newest_event_once_idle() -> None:
    clock = PartitionClock(idle_ms=SECOND)
    # The sparse tail of a replay: the median of the last visitors lags the newest.
    clock.restore([(b"a", T0 - 30 * 60_000), (b"b", T0 - 20 * 60_000), (b"c", T0)])
    clock.caught_up(WALL)

    assert clock.now(WALL) == T0 - 20 * 60_000
    assert clock.now(WALL + 2 * SECOND) == T0 + 2 * SECOND  # as before the restart


def test_an_instant_is_due_after_the_visitors_own_elapsed_time_whatever_its_clock() -> None:
    seen_at = T0 + 5 * SECOND  # the partition clock when the visitor's latest event was read
    for skew in (0, HOUR, -3 * HOUR):  # an honest clock, one hour fast, three hours slow
        latest = T0 + 5 * SECOND + skew
        instant = latest + 30 * SECOND  # e.g. 30 s of dwell
        at = due(seen_at, latest, instant, grace_ms=2 * SECOND)

        assert at == T0 + 37 * SECOND
        assert visitor_time(seen_at, latest, at, grace_ms=2 * SECOND) == instant
        assert visitor_time(seen_at, latest, at - 1, grace_ms=2 * SECOND) < instant


def test_ahead_is_judged_against_the_clock() -> None:
    clock = PartitionClock()
    assert not clock.ahead(T0 + HOUR, WALL, 5 * 60 * SECOND)  # no clock yet: nothing to judge
    replayed(clock, (b"a", T0))

    assert clock.ahead(T0 + HOUR, WALL, 5 * 60 * SECOND)
    assert not clock.ahead(T0 + 60 * SECOND, WALL, 5 * 60 * SECOND)


def test_idle_counts_from_the_latest_record_when_the_answer_was_asked_before_it() -> None:
    clock = PartitionClock(idle_ms=SECOND)
    replayed(clock, (b"a", T0), wall=WALL + 5 * SECOND)
    clock.caught_up(WALL)  # asked at WALL, answered after the record was read

    assert clock.now(WALL + 5 * SECOND + 999) == T0
    assert clock.now(WALL + 7 * SECOND) == T0 + 2 * SECOND


def test_a_visitor_is_never_timed_from_a_clock_behind_its_own_latest_event() -> None:
    newest = T0 + 40 * 60 * SECOND
    assert seen_at(T0, latest=T0 + 30 * 60 * SECOND, head=newest) == T0 + 30 * 60 * SECOND
    # A visitor behind the clock (its own is slow) takes the newest event time read.
    assert seen_at(T0, latest=T0 - 3 * HOUR, head=newest) == newest


def test_a_replay_read_to_its_end_takes_its_newest_event_time_once_idle() -> None:
    clock = PartitionClock(idle_ms=2 * SECOND)
    # A sparse tail: the median stays with visitors seen hours before the last records.
    replayed(clock, *[(f"v{i}".encode(), T0 + i) for i in range(16)])
    replayed(clock, (b"late1", T0 + 5 * HOUR), (b"late2", T0 + 5 * HOUR + SECOND))
    assert clock.now(WALL) == T0 + 9  # the lower median of v2..v15, late1, late2

    clock.caught_up(WALL)
    assert clock.now(WALL + SECOND) == T0 + 9  # not idle long enough yet
    assert clock.now(WALL + 3 * SECOND) == T0 + 5 * HOUR + 4 * SECOND
