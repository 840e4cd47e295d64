"""Queue budgets: at most N invitations per minute or per hour from a queue, in event time.

The engine decides each visitor alone. A budget is shared by every visitor of a queue,
so its decisions need one order over all of them, and the live worker and the backtest
must both find it. That order is event time, in **rounds** of one second:

- An invitation the engine makes for a queue with a budget is a *candidate*. Round ``r``
  holds the candidates whose ``triggered_at`` lies in ``[r, r + ROUND_MS)``.
- Rounds are decided in order. In a round, the queue's bucket is first refilled up to
  the round's start; then its candidates take a token each, the highest ``priority``
  first (ties: the earlier ``triggered_at``, then the smaller invitation id). A
  candidate that finds no token is suppressed with reason ``budget``.
- The bucket holds ``invitations`` tokens and starts full; it refills continuously, by
  ``invitations`` per period. Levels are integers in 1/period_ms of a token, so live and
  backtest compute the same levels on every machine.

The backtest knows every candidate and decides every round (``Budgets.release`` with
``END``). The live worker decides a round once every clickstream partition's watermark
has passed its end (``streams.worker.budgets``). A candidate that arrives after its
round was decided is **late**, and is decided at once, against the bucket as it stands:
the one case where live and the backtest can differ (docs/contract.md, "Budgets").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.instants import parse_instant
from schemas.invitations import Suppression
from schemas.rules import QueueBudget

ROUND_MS: Final = 1000
END: Final = 2**62  # decide every round
# Decided ids are kept to drop copies: those of the last hour of event time, and at
# least the last KEEP of them, since a fast replay can decide hours of event time
# between two commits of the worker's offsets.
RETAIN_MS: Final = 3_600_000
KEEP: Final = 10_000


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the budget needs of an invitation the engine made."""

    id: str  # the invitation id
    queue: str
    at: int  # triggered_at, epoch ms
    priority: int

    @property
    def round(self) -> int:
        return self.at - self.at % ROUND_MS

    def order(self) -> tuple[int, int, int, str]:
        return (self.round, -self.priority, self.at, self.id)

    @classmethod
    def of(cls, invitation: Mapping[str, Any]) -> Candidate:
        """The candidate of an invitation the engine made (its dict)."""
        return cls(
            invitation["invitation_id"],
            invitation["queue"],
            parse_instant(invitation["triggered_at"]),
            invitation["priority"],
        )


@dataclass(slots=True)
class Bucket:
    level: int  # in 1/period_ms of a token
    at: int  # the instant the level is for

    def take(self, budget: QueueBudget, t: int) -> bool:
        """Refill up to ``t`` (never back), then take a token if there is one."""
        period, full = budget.period_ms, budget.invitations * budget.period_ms
        if t > self.at:
            self.level += budget.invitations * (t - self.at)
            self.at = t
        self.level = min(self.level, full)
        if self.level < period:
            return False
        self.level -= period
        return True


@dataclass(slots=True)
class Budgets:
    """The queues' buckets, and the candidates waiting for their round. Pure state: the
    worker saves it (``streams.worker.budgets``), the backtest keeps it in memory."""

    buckets: dict[str, Bucket] = field(default_factory=dict)
    decided_to: int = -END  # every round that ends at or before this is decided
    pending: dict[str, Candidate] = field(default_factory=dict)
    decided: dict[str, int] = field(default_factory=dict)  # id -> at, to drop copies
    late: int = 0  # candidates decided after their round (counted for operators)
    forgotten: list[str] = field(default_factory=list)  # decided ids let go since drained

    def offer(
        self, candidate: Candidate, budgets: Mapping[str, QueueBudget]
    ) -> list[tuple[Candidate, bool]]:
        """Take a candidate in. Returns the decisions made now: none while it waits for
        its round or when it is a copy of one already taken, itself when it is late."""
        if candidate.id in self.pending or candidate.id in self.decided:
            return []
        if candidate.round + ROUND_MS > self.decided_to:
            self.pending[candidate.id] = candidate
            return []
        self.late += 1
        return [self._decide(candidate, max(candidate.round, self.decided_to), budgets)]

    def release(
        self, until: int, budgets: Mapping[str, QueueBudget]
    ) -> list[tuple[Candidate, bool]]:
        """Decide every round that ends at or before ``until``; (candidate, granted) each,
        in the order decided."""
        until -= until % ROUND_MS
        if until <= self.decided_to:
            return []
        due = sorted(
            (c for c in self.pending.values() if c.round + ROUND_MS <= until), key=Candidate.order
        )
        for candidate in due:
            del self.pending[candidate.id]
        made = [self._decide(candidate, candidate.round, budgets) for candidate in due]
        self.decided_to = until
        self._forget(until - RETAIN_MS)
        return made

    def grant_all(self) -> list[tuple[Candidate, bool]]:
        """Grant every waiting candidate, its round left undecided and no token taken: no
        queue has a budget any more, so no watermark will come to decide their rounds."""
        made = [(c, True) for c in sorted(self.pending.values(), key=Candidate.order)]
        for candidate, _ in made:
            self.decided[candidate.id] = candidate.at
        self.pending.clear()
        return made

    def _decide(
        self, candidate: Candidate, t: int, budgets: Mapping[str, QueueBudget]
    ) -> tuple[Candidate, bool]:
        self.decided[candidate.id] = candidate.at
        budget = budgets.get(candidate.queue)
        if budget is None:  # the budget was removed since: nothing to take
            return candidate, True
        bucket = self.buckets.get(candidate.queue)
        if bucket is None:
            bucket = self.buckets[candidate.queue] = Bucket(
                budget.invitations * budget.period_ms, t
            )
        return candidate, bucket.take(budget, t)

    def _forget(self, before: int) -> None:
        """Drop decided ids older than ``before`` (in decision order: the oldest first),
        keeping at least ``KEEP``."""
        decided = self.decided
        while len(decided) > KEEP:
            first = next(iter(decided))
            if decided[first] >= before:
                break
            del decided[first]
            self.forgotten.append(first)

    def drain_forgotten(self) -> list[str]:
        """The decided ids let go since the last call (the worker deletes their keys)."""
        gone, self.forgotten = self.forgotten, []
        return gone


def refused(
    invitations: Iterable[Mapping[str, Any]], budgets: Mapping[str, QueueBudget]
) -> set[str]:
    """The ids of the invitations their queues' budgets hold back, all known at once (the
    backtest): every round decided in order."""
    state = Budgets()
    for invitation in invitations:
        if invitation["queue"] in budgets:
            state.offer(Candidate.of(invitation), budgets)
    return {c.id for c, granted in state.release(END, budgets) if not granted}


def over_budget(decision: Mapping[str, Any]) -> dict[str, Any]:
    """The decision of an invitation its queue's budget held back."""
    return {**decision, "outcome": "suppressed", "reason": Suppression.BUDGET.value}
