"""Capacity: how much of a chat queue can answer, on the compacted ``beckon.capacity`` topic.

The chat side publishes one record per queue every few seconds, keyed by the queue name.
Rules with a ``capacity`` clause are judged against the latest record measured at least
``BECKON_CAPACITY_DELAY_S`` before their instant (docs/contract.md, "Capacity"), so a
record's ``measured_at`` is event time, like an event's ``ts``.

Input from outside: the model is frozen, strict and refuses unknown keys, and
``parse_capacity`` raises ``InvalidCapacity`` naming the field at fault. The worker
counts and skips a bad record; the backtest counts and quotes a bad line.
"""

from __future__ import annotations

from typing import Annotated, Final

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas import _problems
from schemas.errors import InvalidCapacity
from schemas.events import EpochMs

__all__ = ["CAPACITY", "Capacity", "capacity_to_json", "parse_capacity", "validate_capacity"]

QueueName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Capacity(BaseModel):
    """One queue's capacity, as measured at ``measured_at``."""

    # strict: "3" is not a count and true is not 1; a misspelt key must not pass.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    queue: QueueName = Field(description="the queue's name, as in a rule's `queue`; the key")
    agents_online: int = Field(ge=0, description="agents signed in to the queue")
    free_slots: int = Field(ge=0, description="chats the queue can take now")
    expected_wait_s: float | None = Field(
        default=None,
        ge=0,
        description="expected wait of a new chat in seconds; null: not estimated",
    )
    measured_at: EpochMs = Field(
        description="when it was measured: RFC 3339 with offset, or epoch milliseconds"
    )


CAPACITY: Final[TypeAdapter[Capacity]] = TypeAdapter(Capacity)


def parse_capacity(raw: bytes | str) -> Capacity:
    """Capacity JSON -> Capacity; raises InvalidCapacity naming the fields at fault."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidCapacity([("", f"not valid JSON: {exc}")], prefix="capacity: ") from exc
    return validate_capacity(data)


def validate_capacity(data: object) -> Capacity:
    """An already-decoded JSON value -> Capacity; raises InvalidCapacity."""
    if not isinstance(data, dict):
        raise InvalidCapacity(
            [("", f"must be a JSON object, got {_problems.json_type(data)}")], prefix="capacity: "
        )
    try:
        return CAPACITY.validate_python(data)
    except ValidationError as exc:
        accepted = _problems.accepted_fields(Capacity)

        def describe(err: ErrorDetails) -> str:
            if err["type"] == "extra_forbidden":
                return f"is not a known field; accepted: {accepted}"
            return _problems.message(err)

        raise InvalidCapacity(
            _problems.problems(exc, describe=describe), prefix="capacity: "
        ) from exc


def capacity_to_json(capacity: Capacity) -> bytes:
    """A Capacity as compact JSON (``measured_at`` as epoch ms, nulls kept)."""
    return CAPACITY.dump_json(capacity)
