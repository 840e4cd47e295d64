"""How the worker keeps a journey in its table: the journey and where it was read to.

The stored value is the journey's dict (``Journey.to_dict``) plus the worker's
bookkeeping, which the core never sees:

- ``read_to``: the [partition, offset] of the latest clickstream record folded in;
- ``seen_at``: the partition's event-time clock when that record was read
  (``streams.core.clock``), from which the visitor's planned instants are timed.

Tables written before either existed read as they are (see ``Held.anchor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import orjson

from streams.core.journey import Journey

READ_TO: Final = "read_to"
SEEN_AT: Final = "seen_at"


@dataclass(slots=True)
class Held:
    """A journey as the worker holds it."""

    journey: Journey
    read_to: list[int] | None = None  # [partition, offset]; None: no record folded in live
    seen_at: int | None = None  # the partition clock when the latest record was read

    @property
    def anchor(self) -> int:
        """The partition clock the visitor's planned instants are timed from. A journey
        saved before ``seen_at`` existed takes its own latest event time (no skew)."""
        return self.journey.clock if self.seen_at is None else self.seen_at

    def folded_already(self, partition: int, offset: int, ts: int) -> bool:
        """True if the record at ``offset`` of ``partition`` is in the journey already.

        After a crash or a rebalance a worker reads again from the committed offset, and
        the saved journeys can be ahead of it: Faust commits every second, the journeys
        are saved with each batch. Event ids catch the replayed events only while they
        are among the visitor's ``MAX_SEEN_IDS`` latest; the offset catches every one. An
        event newer than the journey is never skipped, so a clickstream topic made anew
        (offsets from 0 again) is not mistaken for a replay.
        """
        read_to = self.read_to
        return (
            read_to is not None
            and offset <= read_to[1]
            and partition == read_to[0]
            and ts <= self.journey.clock
        )


def decode(value: bytes) -> Held:
    data = orjson.loads(value)
    return Held(Journey.from_dict(data), data.get(READ_TO), data.get(SEEN_AT))


def encode(held: Held) -> bytes:
    data = held.journey.to_dict()
    data[READ_TO] = held.read_to
    data[SEEN_AT] = held.seen_at
    return orjson.dumps(data)
