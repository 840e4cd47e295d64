"""Invitation and Decision: what the worker writes for the chat delivery service and operators.

These are outputs that other teams' consumers parse, so the models are frozen but
``extra="ignore"``: a consumer built against this version must keep accepting messages
from a newer worker that added a field (the contract lets the code grow, never rename).
Instants are ``YYYY-MM-DDTHH:MM:SS.mmmZ`` strings; ``format_instant`` writes that form.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from schemas import _problems
from schemas.errors import InvalidInput
from schemas.instants import check_canonical, format_instant, parse_instant

__all__ = [
    "DECISION",
    "INVITATION",
    "SUPPRESSION_REASONS",
    "Decision",
    "Invitation",
    "Suppression",
    "decision_to_json",
    "format_instant",
    "invitation_to_json",
    "parse_decision",
    "parse_instant",
    "parse_invitation",
]

Instant = Annotated[
    str,
    AfterValidator(check_canonical),
    Field(
        json_schema_extra={
            "format": "date-time",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
        }
    ),
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Output(BaseModel):
    # ignore, not forbid: older consumers must accept messages with fields added later.
    model_config = ConfigDict(frozen=True, extra="ignore")

    invitation_id: Id
    visitor_id: Id
    session_id: Id
    site_id: Id
    rule_id: Id
    url: str
    triggered_at: Instant
    priority: int


class Invitation(_Output):
    """A chat invitation for the delivery service to show to one visitor."""

    queue: Id
    message: str
    locale: str | None = None
    expires_at: Instant
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("expires_at")
    @classmethod
    def _not_before_trigger(cls, expires_at: str, info: ValidationInfo) -> str:
        triggered_at = info.data.get("triggered_at")
        if triggered_at is not None and parse_instant(expires_at) < parse_instant(triggered_at):
            raise ValueError(f"{expires_at} is before triggered_at {triggered_at}")
        return expires_at


class Suppression(StrEnum):
    """Why a rule that fired did not invite: the reasons the engine writes today.

    A member is its value wherever it goes (JSON, a Prometheus label, a format string).
    Decision.reason is a str, not this enum, because the contract lets new reasons appear
    and consumers must not break on them."""

    HOLDOUT = "holdout"
    PER_SESSION = "per_session"
    PER_DAY = "per_day"
    MIN_GAP = "min_gap"
    AFTER_DECLINE = "after_decline"
    LOWER_PRIORITY = "lower_priority"
    NO_CAPACITY = "no_capacity"  # the rule's queue lacks capacity (its capacity clause)
    BUDGET = "budget"  # the queue's invitation budget was spent (its queues: budget)


SUPPRESSION_REASONS: Final[tuple[str, ...]] = tuple(reason.value for reason in Suppression)


class Decision(_Output):
    """What happened when a rule fired: invited, or suppressed with the reason; for a
    rule in shadow mode, ``shadow`` with the reason it would have been suppressed, or
    null where it would have invited."""

    outcome: Literal["invited", "suppressed", "shadow"]
    # validate_default: a missing reason must still be checked against the outcome.
    reason: str | None = Field(
        default=None,
        validate_default=True,
        description="null when invited; else why it was (or, for shadow, would have been) "
        "suppressed. Reasons today: " + ", ".join(SUPPRESSION_REASONS) + "; new ones may "
        "be added, so accept reasons not listed here",
    )
    rules_version: str | None = None

    @field_validator("reason")
    @classmethod
    def _reason_matches_outcome(cls, reason: str | None, info: ValidationInfo) -> str | None:
        outcome = info.data.get("outcome")
        if outcome == "suppressed" and not reason:
            raise ValueError(
                "is required when outcome is 'suppressed': "
                + ", ".join(SUPPRESSION_REASONS)
                + ", ..."
            )
        if outcome == "invited" and reason is not None:
            raise ValueError(f"must be null when outcome is 'invited', got {reason!r}")
        if outcome == "shadow" and reason == "":
            raise ValueError("must be null or a reason when outcome is 'shadow', got ''")
        return reason


INVITATION: Final[TypeAdapter[Invitation]] = TypeAdapter(Invitation)
DECISION: Final[TypeAdapter[Decision]] = TypeAdapter(Decision)


def parse_invitation(raw: bytes | str) -> Invitation:
    """Invitation JSON -> Invitation; raises InvalidInput naming the fields at fault."""
    return _parse(raw, INVITATION, "invitation")


def parse_decision(raw: bytes | str) -> Decision:
    """Decision JSON -> Decision; raises InvalidInput naming the fields at fault."""
    return _parse(raw, DECISION, "decision")


def invitation_to_json(invitation: Invitation) -> bytes:
    """An Invitation as compact JSON bytes (nulls kept: consumers see every field)."""
    return INVITATION.dump_json(invitation)


def decision_to_json(decision: Decision) -> bytes:
    """A Decision as compact JSON bytes (nulls kept: consumers see every field)."""
    return DECISION.dump_json(decision)


_T = TypeVar("_T")


def _parse(raw: bytes | str, adapter: TypeAdapter[_T], what: str) -> _T:
    prefix = f"{what}: "
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput([("", f"not valid JSON: {exc}")], prefix=prefix) from exc
    if not isinstance(data, dict):
        raise InvalidInput(
            [("", f"must be a JSON object, got {_problems.json_type(data)}")], prefix=prefix
        )
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise InvalidInput(_problems.problems(exc), prefix=prefix) from exc
