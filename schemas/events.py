"""ClickEvent: what websites publish to the clickstream topic, and its hot-path parser.

One frozen model per ``type``, joined in a discriminated union, so a validated event is
one of eight exact shapes and ``match``/``isinstance`` tell them apart. ``ts`` arrives as
RFC 3339 with an offset or as epoch milliseconds and is always an ``int`` of epoch ms on
the model, so the engine never handles a datetime.

``parse_event`` is the hot path: ``orjson.loads`` and one ``validate_python``; all the
error shaping happens only when validation fails.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails

from schemas import _problems
from schemas.errors import InvalidEvent
from schemas.instants import MAX_MS, MIN_MS, parse_instant


def _to_epoch_ms(value: object) -> object:
    # The common case (integer ms from a browser's Date.now()) costs one type check.
    if type(value) is int:
        if MIN_MS <= value <= MAX_MS:
            return value
        raise ValueError(f"must be epoch milliseconds in years 1 to 9999, got {value}")
    if isinstance(value, str):
        return parse_instant(value)
    # bool is an int subclass in Python but never a time in JSON; floats hide unit mistakes.
    raise ValueError(
        "must be RFC 3339 with an offset (e.g. '2026-12-01T09:00:00Z') or integer "
        f"epoch milliseconds, got {_problems.json_type(value)} {_problems.shown(value)}"
    )


EpochMs = Annotated[
    int,
    BeforeValidator(_to_epoch_ms),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "description": "epoch milliseconds"},
                {"type": "string", "format": "date-time", "description": "RFC 3339 with offset"},
            ]
        }
    ),
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=8192)]
Text = Annotated[str, StringConstraints(max_length=8192)]  # referrer is "" without one
Scalar = str | int | float | bool | None
Percent = Annotated[float, Field(ge=0, le=100)]
MAX_PRESENCE_S: Final = 3600
PresenceS = Annotated[int, Field(ge=1, le=MAX_PRESENCE_S)]


class _Event(BaseModel):
    # strict: a JSON "50" is not a number and true is not 1; it also skips coercion work.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_id: Id
    visitor_id: Id
    site_id: Id
    ts: EpochMs
    session_id: Id | None = None
    url: Url | None = None
    referrer: Text | None = None
    title: Text | None = None
    user_agent: Text | None = None
    attributes: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Scalar] = (
        Field(default_factory=dict)
    )
    # Beckon's addition, for trackers that fall silent while the page is visible.
    presence_s: PresenceS | None = Field(
        None,
        description="How long each event keeps the visitor present, in seconds, from this "
        "event until another event or a new session sets it (default: the engine's "
        "presence timeout).",
    )


class _PageEvent(_Event):
    url: Url


class PageView(_PageEvent):
    """The visitor opened a page; it becomes the current page."""

    type: Literal["page_view"]


class PagePing(_PageEvent):
    """The page is still visible (keeps the visitor present)."""

    type: Literal["page_ping"]


class PageLeave(_PageEvent):
    """The visitor left the page (the visitor is no longer present)."""

    type: Literal["page_leave"]


class Scroll(_PageEvent):
    """The visitor scrolled to ``scroll_pct`` percent of the page."""

    type: Literal["scroll"]
    scroll_pct: Percent


class ExitIntent(_PageEvent):
    """The pointer moved towards leaving the page."""

    type: Literal["exit_intent"]


class Identify(_Event):
    """Visitor attributes only (e.g. after sign-in)."""

    type: Literal["identify"]


class Custom(_Event):
    """A site-defined event, matched by a rule's ``trigger.event``."""

    type: Literal["custom"]
    name: Id


class InvitationResponse(_Event):
    """What the visitor did with an invitation the widget showed."""

    type: Literal["invitation_response"]
    invitation_id: Id
    response: Literal["shown", "accepted", "declined", "dismissed"]


ClickEvent = Annotated[
    PageView | PagePing | PageLeave | Scroll | ExitIntent | Identify | Custom | InvitationResponse,
    Field(discriminator="type"),
]

EVENT_MODELS: Final[dict[str, type[_Event]]] = {
    "page_view": PageView,
    "page_ping": PagePing,
    "page_leave": PageLeave,
    "scroll": Scroll,
    "exit_intent": ExitIntent,
    "identify": Identify,
    "custom": Custom,
    "invitation_response": InvitationResponse,
}
EVENT_TYPES: Final[tuple[str, ...]] = tuple(EVENT_MODELS)
PAGE_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    name for name, model in EVENT_MODELS.items() if issubclass(model, _PageEvent)
)


class DeadLetterReason(StrEnum):
    """Why the worker sent a clickstream message to the DLQ: its ``beckon.reason`` header.

    A member is its value wherever it goes (a header, a Prometheus label, JSON)."""

    EMPTY = "empty"  # the message has no value
    TOO_LARGE = "too_large"  # larger than BECKON_MAX_EVENT_BYTES
    INVALID = "invalid"  # not a valid ClickEvent
    KEY_MISMATCH = "key_mismatch"  # a valid event whose key is not its visitor_id


DLQ_REASONS: Final[tuple[str, ...]] = tuple(reason.value for reason in DeadLetterReason)

CLICK_EVENT: Final[TypeAdapter[ClickEvent]] = TypeAdapter(ClickEvent)
_validate = CLICK_EVENT.validate_python
_validate_json = CLICK_EVENT.validate_json
_dump_json = CLICK_EVENT.dump_json


def parse_event(raw: bytes | str) -> ClickEvent:
    """JSON bytes (or text) -> a validated, frozen ClickEvent; raises InvalidEvent."""
    try:
        # One pass in pydantic-core, JSON straight to the model: the hot path.
        return _validate_json(raw)
    except ValidationError as exc:
        failure = exc
    # Slow path, failures only: decode again to tell bad JSON from a bad field.
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([("", f"not valid JSON: {exc}")]) from exc
    try:
        _validate(data)
    except ValidationError as exc:
        raise InvalidEvent(_event_problems(data, exc)) from exc
    raise InvalidEvent(_event_problems(data, failure)) from failure


def validate_event(data: Any) -> ClickEvent:
    """An already-decoded JSON object -> ClickEvent; raises InvalidEvent."""
    try:
        return _validate(data)
    except ValidationError as exc:
        raise InvalidEvent(_event_problems(data, exc)) from exc


def event_to_json(event: ClickEvent) -> bytes:
    """A ClickEvent as compact JSON bytes (``ts`` as epoch ms, unset options left out)."""
    return _dump_json(event, exclude_none=True)


def _event_problems(data: Any, exc: ValidationError) -> list[tuple[str, str]]:
    if not isinstance(data, dict):
        return [("", f"must be a JSON object, got {_problems.json_type(data)}")]
    accepted = ", ".join(EVENT_TYPES)

    def describe(err: ErrorDetails) -> str:
        kind = err["type"]
        if kind == "union_tag_invalid":
            return f"must be one of {accepted}; got {_problems.shown(data.get('type'))}"
        if kind == "union_tag_not_found":
            return f"is required: one of {accepted}"
        if kind == "extra_forbidden" and err["loc"]:
            tag = str(err["loc"][0])
            return f"is not a field of {tag} events; accepted: " + (
                _problems.accepted_fields(EVENT_MODELS[tag])
            )
        return _problems.message(err)

    def path(loc: tuple[int | str, ...]) -> str:
        # loc[0] is the union's tag (the event type); users never wrote it as a path.
        return "type" if not loc else _problems.dotted(loc[1:])

    return _problems.problems(exc, path=path, describe=describe)
