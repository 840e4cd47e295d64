"""The ``journey`` trigger: a list of globs, or an object of clauses on the session's pages.

Split from ``schemas.rules`` (which re-exports every name). The list form came first and
keeps its meaning: ``journey: [a, b]`` is ``journey: {steps: [a, b]}``. The object form
adds ``within`` (seconds from the first to the last step), ``without`` (no such page
between them), ``min_views`` (at least k views of some pages) and ``returned`` (the
current page was seen before). docs/contract.md, "Trigger", says exactly when each holds.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Self

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from schemas.conditions import FrozenModel, Glob

__all__ = [
    "JOURNEY_CLAUSES",
    "JOURNEY_PAGES",
    "JOURNEY_TAGS",
    "JourneyPattern",
    "JourneyTrigger",
    "ViewCount",
]

# How many of the session's latest page views a journey looks at (the journey state's
# bound). A count above it could never hold, so min_views refuses one.
JOURNEY_PAGES: Final = 100
JOURNEY_CLAUSES: Final[tuple[str, ...]] = ("steps", "min_views", "returned")


class ViewCount(FrozenModel):
    """At least ``at_least`` page views matching ``glob`` in the session."""

    glob: Glob
    at_least: int = Field(ge=1, le=JOURNEY_PAGES)


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def _needs_two_steps(name: str) -> dict[str, Any]:
    two_steps = {"required": ["steps"], "properties": {"steps": {"type": "array", "minItems": 2}}}
    return {"if": _given(name), "then": two_steps}


class JourneyPattern(FrozenModel):
    """The object form of ``journey``: every clause given must hold."""

    # What the validators below check, for other languages' validators too.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [_given(name) for name in JOURNEY_CLAUSES],
            "allOf": [_needs_two_steps("within"), _needs_two_steps("without")],
        }
    )

    steps: tuple[Glob, ...] | None = Field(
        default=None, min_length=1, description="Pages in this order, gaps allowed."
    )
    within: int | None = Field(
        default=None, gt=0, description="Seconds from the first step's view to the last's."
    )
    without: tuple[Glob, ...] | None = Field(
        default=None, min_length=1, description="No such page between the first and last step."
    )
    # A list of {glob, at_least}, not a {glob: k} mapping: errors name an index rather
    # than a glob, YAML cannot silently drop a repeated key, and a row can grow fields.
    min_views: tuple[ViewCount, ...] | None = Field(
        default=None, min_length=1, description="Each: at least k such page views."
    )
    returned: Annotated[StrictBool, WithJsonSchema({"const": True})] | None = Field(
        default=None, description="The current page was viewed earlier, another page between."
    )

    @field_validator("within", "without")
    @classmethod
    def _two_steps(cls, value: Any, info: ValidationInfo) -> Any:
        # Both speak of what lies between the first and the last step: with fewer than
        # two steps there is nothing between, and the clause would silently do nothing.
        steps = info.data.get("steps")
        if value is not None and (steps is None or len(steps) < 2):
            given = 0 if steps is None else len(steps)
            raise ValueError(f"needs at least two steps, got {given}")
        return value

    @field_validator("returned")
    @classmethod
    def _only_true(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("must be true; leave it out for no condition on returns")
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if all(getattr(self, name) is None for name in JOURNEY_CLAUSES):
            raise ValueError("needs at least one clause: " + ", ".join(JOURNEY_CLAUSES))
        return self


def _journey_kind(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        return "<steps>"
    if isinstance(value, dict | JourneyPattern):
        return "<pattern>"
    return None  # reported by the custom error below


JourneyTrigger = Annotated[
    Annotated[tuple[Glob, ...], Field(min_length=1), Tag("<steps>")]
    | Annotated[JourneyPattern, Tag("<pattern>")],
    Discriminator(
        _journey_kind,
        custom_error_type="journey_type",
        custom_error_message=(
            "must be a list of globs or an object with steps, within, without, min_views "
            "or returned"
        ),
    ),
]
# pydantic puts these in error locations; a user never wrote them.
JOURNEY_TAGS: Final[frozenset[str]] = frozenset({"<steps>", "<pattern>"})
