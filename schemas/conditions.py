"""Rule conditions on who, where and when: audience predicates, location, timeframe.

Split from ``schemas.rules`` (which re-exports every name) to keep each module small.
Predicates are a plain JSON scalar (equality) or an object of operators; a timeframe's
``hours`` text is kept on the model as minutes of the local day, parsed once at load.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas import _problems

Glob = Annotated[str, StringConstraints(min_length=1, max_length=2048)]

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: Final[tuple[Day, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Scalar = str | int | float | bool | None


def _number(value: Any) -> Any:
    # Strict: `gte: "2"` or `gte: true` in YAML is a mistake to report, not to coerce.
    if type(value) is int or type(value) is float:
        return value
    raise ValueError(f"must be a number, got {_problems.json_type(value)} {_problems.shown(value)}")


Number = Annotated[int | float, BeforeValidator(_number)]
OPERATORS: Final[tuple[str, ...]] = ("in", "not_in", "gte", "gt", "lte", "lt", "exists", "contains")


class FrozenModel(BaseModel):
    """Base of rule parts: frozen, and unknown keys are errors (a typo must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PredicateOps(FrozenModel):
    """The object form of a predicate: every operator given must hold."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    not_in: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    gte: Number | None = None
    gt: Number | None = None
    lte: Number | None = None
    lt: Number | None = None
    exists: StrictBool | None = None
    contains: str | int | float | bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_operators(cls, data: Any) -> Any:
        if isinstance(data, dict):
            accepted = ", ".join(OPERATORS)
            unknown = [key for key in data if key not in OPERATORS]
            if unknown:
                raise PydanticCustomError(
                    "unknown_operator",
                    "unknown operator {name}; accepted: {accepted}",
                    {"name": repr(unknown[0]), "accepted": accepted},
                )
            if not any(value is not None for value in data.values()):
                raise PydanticCustomError(
                    "no_operator", "needs at least one operator: {accepted}", {"accepted": accepted}
                )
        return data


def _predicate_kind(value: Any) -> str | None:
    if isinstance(value, dict | PredicateOps):
        return "<operators>"
    if value is None or isinstance(value, str | int | float | bool):
        return "<value>"
    return None  # a list, or a YAML date: reported by the custom error below


Predicate = Annotated[
    Annotated[Scalar, Tag("<value>")] | Annotated[PredicateOps, Tag("<operators>")],
    Discriminator(
        _predicate_kind,
        custom_error_type="predicate_type",
        custom_error_message=(
            "must be a plain value (string, number, boolean or null; quote dates) "
            "or an object of operators: " + ", ".join(OPERATORS)
        ),
    ),
]
# pydantic puts these in error locations; a user never wrote them.
UNION_TAGS: Final[frozenset[str]] = frozenset({"<value>", "<operators>"})


class Location(FrozenModel):
    """Globs on the URL without query and fragment; no ``include`` means every page."""

    include: tuple[Glob, ...] = ()
    exclude: tuple[Glob, ...] = ()


def _parse_hours(value: Any) -> tuple[int, int]:
    if not isinstance(value, str):
        raise ValueError(f"must be a string like '09:00-18:00', got {_problems.shown(value)}")
    start_text, dash, end_text = value.partition("-")
    start, end = _minute_of_day(start_text), _minute_of_day(end_text, end=True)
    if not dash or start is None or end is None:
        raise ValueError(
            f"must be 'HH:MM-HH:MM' (24-hour, end may be 24:00), got {_problems.shown(value)}"
        )
    if start == end:
        raise ValueError(f"start and end must differ, got {value!r}; leave hours out for all day")
    return start, end


def _minute_of_day(text: str, *, end: bool = False) -> int | None:
    hh, colon, mm = text.partition(":")
    if not (colon and len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()):
        return None
    minute = int(hh) * 60 + int(mm)
    ok = int(mm) < 60 and (minute < 1440 or (end and minute == 1440))
    return minute if ok else None


def _format_hours(hours: tuple[int, int]) -> str:
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in hours)


# Kept on the model as (start, end) minutes of the local day, end exclusive; end < start
# spans midnight. Written back (JSON, rules topic) as the "HH:MM-HH:MM" text it came from.
Hours = Annotated[
    tuple[int, int],
    BeforeValidator(_parse_hours),
    PlainSerializer(_format_hours, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
            "examples": ["09:00-18:00", "22:00-02:00"],
        }
    ),
]


class Timeframe(FrozenModel):
    """When a rule may fire, in local time of ``timezone`` (UTC when not given)."""

    timezone: str = "UTC"
    start_date: date | None = None
    end_date: date | None = None
    days: tuple[Day, ...] | None = Field(default=None, min_length=1)
    hours: Hours | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {name!r}; use an IANA name such as 'Asia/Tokyo' or 'UTC'"
            ) from exc
        return name

    @field_validator("end_date")
    @classmethod
    def _not_before_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if end is not None and start is not None and end < start:
            raise ValueError(f"{end} is before start_date {start}")
        return end

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, days: tuple[Day, ...] | None) -> tuple[Day, ...] | None:
        if days is None:
            return None
        repeated = sorted({d for d in days if days.count(d) > 1}, key=DAYS.index)
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        # Week order, so [fri, mon] and [mon, fri] are the same rule (and rules version).
        return tuple(sorted(days, key=DAYS.index))

    @property
    def zone(self) -> ZoneInfo:
        """The time zone (ZoneInfo caches instances, so this is cheap)."""
        return ZoneInfo(self.timezone)

    @property
    def weekdays(self) -> frozenset[int]:
        """Allowed days as ``date.weekday()`` numbers (Monday is 0); all when not given."""
        return frozenset(range(7) if self.days is None else (DAYS.index(d) for d in self.days))

    def in_hours(self, minute_of_day: int) -> bool:
        """Whether a local minute of the day (0..1439) falls in ``hours`` (all day without)."""
        if self.hours is None:
            return True
        start, end = self.hours
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end
