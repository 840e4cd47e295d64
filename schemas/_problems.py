"""Turns pydantic's validation errors into Beckon's ``(field_path, message)`` problems.

pydantic's messages talk about Python ("Input should be a valid dictionary"); Beckon's
users write JSON and YAML, so every message here says what is wrong in their terms and
what would be accepted. Paths are dotted with ``[i]`` indexes: ``rules[2].trigger.journey[0]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

# Rule ids and the like are checked with a regex; a regex is not what a user wants to read.
PATTERN_HINTS: dict[str, str] = {
    r"^[a-z0-9-]+$": "only lowercase letters, digits and '-'",
    r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$": "a language tag such as 'ja' or 'pt-BR'",
}

_JSON_TYPE_NAMES = {
    "dict": "an object",
    "list": "a list",
    "tuple": "a list",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
    "date": "a date",
    "datetime": "a date-time",
}


def json_type(value: object) -> str:
    """How a user would name the type of a value that came from JSON or YAML."""
    name = type(value).__name__
    return _JSON_TYPE_NAMES.get(name, name)


def shown(value: object, limit: int = 60) -> str:
    """A short, readable rendering of a bad input value for an error message."""
    # Users wrote JSON or YAML, where Python's True/None are true/null.
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dotted(loc: Sequence[int | str]) -> str:
    """``('rules', 2, 'trigger')`` -> ``'rules[2].trigger'``."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue  # pydantic's marker for "the key itself is bad"; the key is already named
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _bound(err: ErrorDetails, word: str, key: str) -> str:
    return f"must be {word} {err.get('ctx', {}).get(key)}, got {shown(err['input'])}"


def _string_too_short(err: ErrorDetails) -> str:
    n = err.get("ctx", {}).get("min_length", 1)
    return "must not be empty" if n == 1 else f"must be at least {n} characters long"


def _too_short(err: ErrorDetails) -> str:
    n = err.get("ctx", {}).get("min_length", 1)
    return "must not be empty" if n == 1 else f"must have at least {n} items"


def _pattern(err: ErrorDetails) -> str:
    pattern = str(err.get("ctx", {}).get("pattern", ""))
    hint = PATTERN_HINTS.get(pattern, f"text matching {pattern}")
    return f"must be {hint}, got {shown(err['input'])}"


def _wrong_type(expected: str) -> Callable[[ErrorDetails], str]:
    return lambda err: f"must be {expected}, got {json_type(err['input'])} {shown(err['input'])}"


def _own_message(err: ErrorDetails) -> str:
    # Our validators raise ValueError("..."); pydantic prefixes "Value error, ".
    error = err.get("ctx", {}).get("error")
    return str(error) if error is not None else err["msg"]


_MESSAGES: dict[str, Callable[[ErrorDetails], str]] = {
    "missing": lambda err: "is required",
    "extra_forbidden": lambda err: "is not a known field",
    "string_too_short": _string_too_short,
    "string_too_long": lambda err: (
        f"must be at most {err.get('ctx', {}).get('max_length')} characters, "
        f"got {len(str(err['input']))}"
    ),
    "string_pattern_mismatch": _pattern,
    "too_short": _too_short,
    "too_long": lambda err: f"must have at most {err.get('ctx', {}).get('max_length')} items",
    "greater_than": lambda err: _bound(err, "greater than", "gt"),
    "greater_than_equal": lambda err: _bound(err, "at least", "ge"),
    "less_than": lambda err: _bound(err, "less than", "lt"),
    "less_than_equal": lambda err: _bound(err, "at most", "le"),
    "literal_error": lambda err: (
        f"must be {err.get('ctx', {}).get('expected')}, got {shown(err['input'])}"
    ),
    "string_type": _wrong_type("a string"),
    "int_type": _wrong_type("an integer"),
    "int_parsing": _wrong_type("an integer"),
    "int_from_float": _wrong_type("a whole number"),
    "float_type": _wrong_type("a number"),
    "float_parsing": _wrong_type("a number"),
    "bool_type": _wrong_type("true or false"),
    "bool_parsing": _wrong_type("true or false"),
    "dict_type": _wrong_type("an object"),
    "model_type": _wrong_type("an object"),
    "model_attributes_type": _wrong_type("an object"),
    "list_type": _wrong_type("a list"),
    "tuple_type": _wrong_type("a list"),
    "date_type": _wrong_type("a date such as 2026-12-01"),
    "date_parsing": _wrong_type("a date such as 2026-12-01"),
    "date_from_datetime_parsing": _wrong_type("a date such as 2026-12-01"),
    "date_from_datetime_inexact": _wrong_type("a date such as 2026-12-01"),
    "value_error": _own_message,
    "assertion_error": _own_message,
}


_PERCENT_BOUNDS = frozenset({"greater_than_equal", "less_than_equal"})


def message(err: ErrorDetails) -> str:
    """The human message for one pydantic error (custom errors keep their own text)."""
    loc = err["loc"]
    if err["type"] in _PERCENT_BOUNDS and loc and str(loc[-1]).endswith("_pct"):
        # Every *_pct field is 0..100; naming both ends beats naming the one crossed.
        return f"must be between 0 and 100, got {shown(err['input'])}"
    render = _MESSAGES.get(err["type"])
    return render(err) if render is not None else err["msg"]


def problems(
    exc: ValidationError,
    *,
    path: Callable[[tuple[int | str, ...]], str] = dotted,
    describe: Callable[[ErrorDetails], str] = message,
) -> list[tuple[str, str]]:
    """One ``(field_path, message)`` per error, in pydantic's order, without repeats."""
    errors = exc.errors(include_url=False)
    # pydantic counts only the items that validated, so one bad item in a list that must
    # not be empty also reports "too short"; the bad item (or a bad field of it, for a
    # list of objects) is the one worth reading.
    item_locs = {tuple(err["loc"][:n]) for err in errors for n in range(len(err["loc"]))}
    seen: dict[tuple[str, str], None] = {}
    for err in errors:
        if err["type"] == "too_short" and tuple(err["loc"]) in item_locs:
            continue
        seen[(path(tuple(err["loc"])), describe(err))] = None
    return list(seen)


def accepted_fields(model: Any) -> str:
    """The keys a model accepts, by the names a user writes (aliases where given)."""
    return ", ".join(f.alias or name for name, f in model.model_fields.items())
