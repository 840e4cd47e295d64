"""Queue budgets (streams.core.budget): the bucket, the rounds, and live order equals the
backtest's whatever order the candidates arrive in (docs/contract.md, "Budgets")."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.instants import format_instant, parse_instant
from schemas.rules import QueueBudget
from streams.core.budget import END, KEEP, RETAIN_MS, ROUND_MS, Budgets, Candidate, refused

T0 = parse_instant("2026-12-01T09:00:00.000Z")
TWO_A_MINUTE = {"sales": QueueBudget(invitations=2, per="minute")}


def invitation(id: str, at: int, priority: int = 0, queue: str = "sales") -> dict[str, object]:
    return {"invitation_id": id, "queue": queue, "triggered_at": format_instant(at),
            "priority": priority}  # fmt: skip


def test_the_contracts_example() -> None:
    """Two a minute; three in one round: priority first, then time; a token back in 30 s."""
    made = [
        invitation("quote", T0 + 10_200, priority=10),
        invitation("pricing-1", T0 + 10_050, priority=5),
        invitation("pricing-2", T0 + 10_700, priority=5),
        invitation("too-soon", T0 + 39_999),
        invitation("after-30s", T0 + 40_000),
    ]
    assert refused(made, TWO_A_MINUTE) == {"pricing-2", "too-soon"}


def test_priority_wins_the_last_token_even_when_later_in_the_round() -> None:
    one = {"sales": QueueBudget(invitations=1, per="hour")}
    made = [invitation("early-low", T0 + 100, priority=1), invitation("late-high", T0 + 900, 9)]
    assert refused(made, one) == {"early-low"}
    # in the next round, first come is first served: the round before was decided
    made = [invitation("early-low", T0 + 900, priority=1), invitation("late-high", T0 + 1000, 9)]
    assert refused(made, one) == {"late-high"}


def test_ties_go_to_the_smaller_invitation_id() -> None:
    one = {"sales": QueueBudget(invitations=1, per="minute")}
    assert refused([invitation("b", T0), invitation("a", T0)], one) == {"b"}


def test_the_bucket_refills_continuously_and_never_above_full() -> None:
    # 60 per hour: one token a minute. After an idle day it holds 60, not more.
    hourly = {"sales": QueueBudget(invitations=60, per="hour")}
    burst = [invitation(f"i{n:03}", T0 + n) for n in range(100)]
    assert len(refused(burst, hourly)) == 40
    later = [invitation(f"j{n:03}", T0 + 86_400_000 + n) for n in range(61)]
    assert refused(burst + later, hourly) == {f"i{n:03}" for n in range(60, 100)} | {"j060"}
    # one minute after the burst a single token is back
    after = [invitation("next", T0 + 60_000), invitation("next-2", T0 + 60_001)]
    assert refused(burst + after, hourly) - refused(burst, hourly) == {"next-2"}


def test_queues_are_separate_and_a_queue_without_budget_is_never_held() -> None:
    made = [invitation(f"s{n}", T0, queue="sales") for n in range(3)]
    made += [invitation(f"x{n}", T0, queue="support") for n in range(5)]
    assert refused(made, TWO_A_MINUTE) == {"s2"}


def test_rounds_wait_for_their_end_and_late_ones_are_decided_at_once() -> None:
    one = {"sales": QueueBudget(invitations=1, per="hour")}
    state = Budgets()
    assert state.offer(Candidate("a", "sales", T0 + 500, 0), one) == []
    assert state.release(T0 + 999, one) == []  # the round is not over
    [(decided, granted)] = state.release(T0 + ROUND_MS, one)
    assert (decided.id, granted) == ("a", True)
    # a copy of a decided candidate is dropped; a late one is decided at once
    assert state.offer(Candidate("a", "sales", T0 + 500, 0), one) == []
    [(late, granted)] = state.offer(Candidate("b", "sales", T0 + 700, 9), one)
    assert (late.id, granted, state.late) == ("b", False, 1)


def test_a_copy_waiting_for_its_round_is_dropped() -> None:
    state = Budgets()
    state.offer(Candidate("a", "sales", T0, 0), TWO_A_MINUTE)
    assert state.offer(Candidate("a", "sales", T0, 0), TWO_A_MINUTE) == []
    assert [c.id for c, _ in state.release(END, TWO_A_MINUTE)] == ["a"]


def test_decided_ids_are_kept_for_an_hour_of_event_time_and_at_least_the_last_few() -> None:
    state = Budgets()
    for n in range(KEEP + 1):
        state.offer(Candidate(f"c{n}", "sales", T0 + n, 0), TWO_A_MINUTE)
    state.release(T0 + ROUND_MS, TWO_A_MINUTE)
    state.release(T0 + 100 * RETAIN_MS, TWO_A_MINUTE)  # hours on: the last KEEP stay
    assert len(state.decided) == KEEP and "c0" not in state.decided
    assert state.drain_forgotten() == ["c0"]
    # a copy of a forgotten one is decided again, as late
    assert len(state.offer(Candidate("c0", "sales", T0, 0), TWO_A_MINUTE)) == 1
    assert state.offer(Candidate("c1", "sales", T0 + 1, 0), TWO_A_MINUTE) == []


def test_a_budget_removed_before_the_round_lets_it_through() -> None:
    state = Budgets()
    for n in range(5):
        state.offer(Candidate(f"c{n}", "sales", T0, 0), TWO_A_MINUTE)
    assert all(granted for _, granted in state.release(END, {}))


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(0, 20_000), min_size=1, max_size=60),
    priorities=st.lists(st.integers(0, 3), min_size=60, max_size=60),
    seed=st.integers(0, 2**32),
    size=st.integers(1, 4),
)
def test_live_equals_the_backtest_for_candidates_in_time(
    times: list[int], priorities: list[int], seed: int, size: int
) -> None:
    """Live: candidates of several partitions interleave, each partition in time order,
    with watermarks that never pass a candidate still to come from their partition;
    rounds are released as watermarks allow. The decisions equal the backtest's."""
    budgets = {"sales": QueueBudget(invitations=size, per="minute")}
    made = [invitation(f"i{n:02}", T0 + t, priorities[n]) for n, t in enumerate(times)]
    rng = random.Random(seed)
    partitions: list[list[dict[str, object]]] = [[], [], []]
    for item in made:
        rng.choice(partitions).append(item)
    for part in partitions:
        part.sort(key=lambda i: str(i["triggered_at"]))
    state, marks, live = Budgets(), [T0 - 1] * 3, set()
    while any(partitions):
        p = rng.choice([n for n, part in enumerate(partitions) if part])
        item = partitions[p].pop(0)
        candidate = Candidate.of(item)
        made_now = state.offer(candidate, budgets)
        assert made_now == []  # never late: no watermark passed it
        live |= {c.id for c, granted in made_now if not granted}
        nxt = partitions[p][0] if partitions[p] else None
        # the partition's watermark: anything below its next candidate
        marks[p] = parse_instant(str(nxt["triggered_at"])) - 1 if nxt else T0 + 30_000
        live |= {c.id for c, granted in state.release(min(marks), budgets) if not granted}
    live |= {c.id for c, granted in state.release(END, budgets) if not granted}
    assert live == refused(made, budgets)
